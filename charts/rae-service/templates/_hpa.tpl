{{- define "rae-service.hpa" -}}
{{- $scaling := .service.autoscaling | default dict -}}
{{- if $scaling.enabled -}}
{{- $min := $scaling.minReplicas | default 1 -}}
{{- $max := required (printf "%s.autoscaling.maxReplicas is required" .name) $scaling.maxReplicas -}}
{{- if gt (int $min) (int $max) -}}
{{- fail (printf "%s.autoscaling: minReplicas (%v) exceeds maxReplicas (%v)" .name $min $max) -}}
{{- end -}}
{{- if not (or $scaling.targetCPUUtilizationPercentage $scaling.targetMemoryUtilizationPercentage) -}}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" .name) -}}
{{- end -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "rae-service.fullname" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "rae-service.fullname" . }}
  minReplicas: {{ $min }}
  maxReplicas: {{ $max }}
  metrics:
    {{- with $scaling.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $scaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $scaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
{{- end -}}
