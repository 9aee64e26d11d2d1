{{- define "rae-service.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "rae-service.fullname" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "rae-service.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ include "rae-service.port" . }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end -}}
