{{- define "rae-service.serviceAccount" -}}
{{- if dig "serviceAccount" "create" true (.defaults | default dict) -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "rae-service.serviceAccountName" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
  {{- with dig "serviceAccount" "annotations" dict .service }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
{{- end -}}
