{{- define "rae-service.service" -}}
{{- $service := .service.service | default dict -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "rae-service.fullname" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
  {{- with $service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $service.type | default "ClusterIP" }}
  selector:
    {{- include "rae-service.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ include "rae-service.port" . }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end -}}
