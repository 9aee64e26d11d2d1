{{/* Every resource of one service, each as its own YAML document; nothing when disabled. */}}
{{- define "rae-service.all" -}}
{{- if dig "enabled" true .service -}}
{{- range $part := list "serviceAccount" "service" "deployment" "hpa" "pdb" }}
{{- $doc := include (printf "rae-service.%s" $part) $ | trim }}
{{- if $doc }}
---
{{ $doc }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}
