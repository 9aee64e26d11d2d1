{{- define "rae-service.pdb" -}}
{{- $budget := .service.podDisruptionBudget | default dict -}}
{{- if $budget.enabled -}}
{{- if and (hasKey $budget "minAvailable") (hasKey $budget "maxUnavailable") -}}
{{- fail (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable, not both" .name) -}}
{{- end -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "rae-service.fullname" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
spec:
  {{- if hasKey $budget "minAvailable" }}
  minAvailable: {{ $budget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ hasKey $budget "maxUnavailable" | ternary $budget.maxUnavailable 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "rae-service.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
