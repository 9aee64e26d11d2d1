{{- define "rae.fullname" -}}
{{- include "rae-service.releaseFullname" . -}}
{{- end -}}

{{- define "rae.labels" -}}
helm.sh/chart: {{ include "rae-service.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Matches the pods of every service of this release. */}}
{{- define "rae.releasePodLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
{{- end -}}

{{- define "rae.services" -}}
gateway memory ml graph reflection cost events
{{- end -}}

{{- define "rae.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "rae.fullname" .) -}}
{{- end -}}

{{- define "rae.serviceUrl" -}}
{{- $ctx := dict "root" .root "name" .name -}}
{{- printf "http://%s:%v" (include "rae-service.fullname" $ctx) (index .root.Values .name).port -}}
{{- end -}}

{{/*
Renders every resource of one service: the RAE wiring (infrastructure, peers, secrets) is computed
here, the Kubernetes shape comes from the rae-service library.
*/}}
{{- define "rae.service" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values $name -}}
{{- $global := $root.Values.global -}}
{{- $secretName := include "rae.secretName" $root -}}
{{- $keys := $root.Values.secrets.keys -}}
{{- $env := dict "RAE_SERVICE_NAME" $name "RAE_ENVIRONMENT" $global.environment "LOG_LEVEL" $global.logLevel -}}
{{- $secretEnv := dict -}}
{{- range $peer := splitList " " (include "rae.services" $root) -}}
{{- if (index $root.Values $peer).enabled -}}
{{- $_ := set $env (printf "%s_URL" (upper $peer)) (include "rae.serviceUrl" (dict "root" $root "name" $peer)) -}}
{{- end -}}
{{- end -}}
{{- with $global.otel.endpoint -}}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- end -}}
{{- range $use := $svc.uses -}}
{{- if eq $use "postgres" -}}
{{- $_ := set $secretEnv "DATABASE_URL" (dict "name" $secretName "key" $keys.databaseUrl) -}}
{{- else if eq $use "kafka" -}}
{{- $_ := set $env "KAFKA_BOOTSTRAP_SERVERS" $global.kafka.bootstrapServers -}}
{{- else if eq $use "redis" -}}
{{- $_ := set $env "REDIS_URL" $global.redis.url -}}
{{- else if eq $use "neo4j" -}}
{{- $_ := set $env "NEO4J_URI" $global.neo4j.uri -}}
{{- $_ := set $env "NEO4J_USER" $global.neo4j.user -}}
{{- $_ := set $env "NEO4J_DATABASE" $global.neo4j.database -}}
{{- $_ := set $secretEnv "NEO4J_PASSWORD" (dict "name" $secretName "key" $keys.neo4jPassword) -}}
{{- else if eq $use "qdrant" -}}
{{- with $global.qdrant.url -}}
{{- $_ := set $env "QDRANT_URL" . -}}
{{- end -}}
{{- else if eq $use "auth" -}}
{{- $_ := set $secretEnv "JWT_SECRET" (dict "name" $secretName "key" $keys.jwtSecret) -}}
{{- $_ := set $secretEnv "RAE_ADMIN_TOKEN" (dict "name" $secretName "key" $keys.adminToken) -}}
{{- else -}}
{{- fail (printf "%s.uses: unknown %q (expected postgres, kafka, redis, neo4j, qdrant or auth)" $name $use) -}}
{{- end -}}
{{- end -}}
{{- $podAnnotations := dict -}}
{{- if and $secretEnv (not $root.Values.secrets.existingSecret) -}}
{{- $_ := set $podAnnotations "checksum/secret" (include "rae.secretInputs" $root | sha256sum) -}}
{{- end -}}
{{- include "rae-service.all" (dict "root" $root "name" $name "service" $svc "defaults" $root.Values.defaults "env" $env "secretEnv" $secretEnv "podAnnotations" $podAnnotations) -}}
{{- end -}}

{{/*
What the chart's Secret is made of. Hashing the inputs rather than the data keeps the checksum
stable while generated values are carried over from the live Secret.
*/}}
{{- define "rae.secretInputs" -}}
{{- toJson (dict "secrets" .Values.secrets "databaseUrl" .Values.global.postgres.url) -}}
{{- end -}}

{{/* The Secret's data; a value left empty is kept from the live Secret, else generated if allowed. */}}
{{- define "rae.secretData" -}}
{{- $live := dict -}}
{{- with lookup "v1" "Secret" .Release.Namespace (include "rae.fullname" .) -}}
{{- $live = .data | default dict -}}
{{- end -}}
{{- $keys := .Values.secrets.keys -}}
{{- $data := dict -}}
{{- $entries := list
  (list $keys.databaseUrl .Values.global.postgres.url false)
  (list $keys.jwtSecret .Values.secrets.jwtSecret true)
  (list $keys.adminToken .Values.secrets.adminToken true)
  (list $keys.neo4jPassword .Values.secrets.neo4jPassword false) -}}
{{- range $entry := $entries -}}
{{- $key := index $entry 0 -}}
{{- $value := index $entry 1 -}}
{{- if $value -}}
{{- $_ := set $data $key ($value | b64enc) -}}
{{- else if hasKey $live $key -}}
{{- $_ := set $data $key (index $live $key) -}}
{{- else if index $entry 2 -}}
{{- $_ := set $data $key (randAlphaNum 48 | b64enc) -}}
{{- else -}}
{{- $_ := set $data $key "" -}}
{{- end -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}
