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

{{/* Matches the pods of every service of this release (and the helm test Pod). */}}
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

{{/* Settings per service, generated from the settings classes (deploy/tools/chart_settings.py). */}}
{{- define "rae.settings" -}}
{{- .Files.Get "files/settings.json" -}}
{{- end -}}

{{/* The value at a dotted path of .Values, as a string ("" when unset; a map as JSON, "" when empty). */}}
{{- define "rae.valueAt" -}}
{{- $value := .root.Values -}}
{{- range $part := splitList "." .path -}}
{{- if kindIs "map" $value -}}
{{- $value = index $value $part -}}
{{- else -}}
{{- $value = "" -}}
{{- end -}}
{{- end -}}
{{- if kindIs "map" $value -}}
{{- if $value -}}{{- toJson $value -}}{{- end -}}
{{- else if kindIs "invalid" $value -}}
{{- else -}}
{{- include "rae.envValue" (dict "value" $value "type" "string") -}}
{{- end -}}
{{- end -}}

{{/*
A setting's value as its environment variable's text: lists and maps as JSON, booleans as
true/false, integers without the float64 notation YAML numbers get in Helm (10485760, not 1.048576e+07).
*/}}
{{- define "rae.envValue" -}}
{{- $value := .value -}}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) -}}
{{- toJson $value -}}
{{- else if kindIs "bool" $value -}}
{{- ternary "true" "false" $value -}}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) -}}
{{- if or (eq .type "integer") (eq (float64 $value) (float64 (int64 $value))) -}}
{{- int64 $value -}}
{{- else -}}
{{- toString $value -}}
{{- end -}}
{{- else -}}
{{- toString $value -}}
{{- end -}}
{{- end -}}

{{- define "rae.kafkaCaDir" -}}
/etc/rae/kafka-ca
{{- end -}}

{{/* Checks of global.* that no single setting can make (run once, from secret.yaml). */}}
{{- define "rae.validate" -}}
{{- $kafka := .Values.global.kafka -}}
{{- if and $kafka.tls.ca.secretName $kafka.tls.ca.configMapName -}}
{{- fail "global.kafka.tls.ca: set secretName or configMapName, not both" -}}
{{- end -}}
{{- if and (or $kafka.tls.ca.secretName $kafka.tls.ca.configMapName) (not (has $kafka.securityProtocol (list "SSL" "SASL_SSL"))) -}}
{{- fail (printf "global.kafka.tls.ca is set but global.kafka.securityProtocol is %s: a CA is used with SSL or SASL_SSL only" $kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.gateway.enabled) -}}
{{- fail "ingress.enabled needs gateway.enabled: the Ingress routes to the gateway only" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- fail "httpRoute.enabled needs httpRoute.parentRefs (the Gateway listener to attach to)" -}}
{{- end -}}
{{- if and .Values.httpRoute.httpsRedirect.enabled (not .Values.httpRoute.httpsRedirect.parentRefs) -}}
{{- fail "httpRoute.httpsRedirect.enabled needs httpRoute.httpsRedirect.parentRefs (the HTTP listener)" -}}
{{- end -}}
{{- if and .Values.tests.enabled (not .Values.gateway.enabled) -}}
{{- fail "tests.enabled needs gateway.enabled: the helm test runs through the gateway (or set tests.enabled=false)" -}}
{{- end -}}
{{- end -}}

{{/*
Renders every resource of one service. What it reads comes from files/settings.json; each
non-secret setting goes to the service's ConfigMap with the first value found in
`<service>.config`, `config`, then the chart value that sets it (global.*); each secret one is a
secretKeyRef into the chart's Secret or `secrets.existingSecret`. A setting the service needs
and nobody gave stops the render, naming the value to set.
*/}}
{{- define "rae.service" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $values := $root.Values -}}
{{- $svc := index $values $name -}}
{{- if $svc.enabled -}}
{{- $spec := index (include "rae.settings" $root | fromJson).services $name -}}
{{- $serviceConfig := $svc.config | default dict -}}
{{- $globalConfig := $values.config | default dict -}}
{{- $existing := $values.secrets.existingSecret -}}
{{- $secretName := include "rae.secretName" $root -}}
{{- $fullname := include "rae-service.fullname" (dict "root" $root "name" $name) -}}
{{- $migrate := and $values.migrations.initContainer.enabled (has "postgres" $spec.uses) -}}
{{- $ca := $values.global.kafka.tls.ca -}}
{{- $caFile := "" -}}
{{- if and (has "kafka" $spec.uses) (or $ca.secretName $ca.configMapName) -}}
{{- $caFile = printf "%s/%s" (include "rae.kafkaCaDir" $root) $ca.key -}}
{{- end -}}
{{- /* Non-secret settings. */ -}}
{{- $data := dict -}}
{{- range $env, $setting := $spec.settings -}}
{{- if not (or $setting.secret $setting.chartManaged) -}}
{{- $value := "" -}}
{{- if hasKey $serviceConfig $env -}}
{{- $value = include "rae.envValue" (dict "value" (index $serviceConfig $env) "type" $setting.type) -}}
{{- else if hasKey $globalConfig $env -}}
{{- $value = include "rae.envValue" (dict "value" (index $globalConfig $env) "type" $setting.type) -}}
{{- else if $setting.value -}}
{{- $value = include "rae.valueAt" (dict "root" $root "path" $setting.value) -}}
{{- else if $setting.peer -}}
{{- if (index $values $setting.peer).enabled -}}
{{- $value = include "rae.serviceUrl" (dict "root" $root "name" $setting.peer) -}}
{{- end -}}
{{- else if eq $env "KAFKA_SSL_CA_FILE" -}}
{{- $value = $caFile -}}
{{- else if eq $env "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" -}}
{{- /* Always explicit: the grace period below is checked against it. */ -}}
{{- $value = include "rae.envValue" (dict "value" $setting.default "type" $setting.type) -}}
{{- end -}}
{{- if eq $env "DATABASE_MIGRATE_ON_START" -}}
{{- if and $migrate (eq $value "true") -}}
{{- fail (printf "%s: DATABASE_MIGRATE_ON_START=true in config contradicts migrations.initContainer.enabled (the migrate init container migrates; the service must not)" $name) -}}
{{- end -}}
{{- if $migrate -}}
{{- $value = "false" -}}
{{- end -}}
{{- end -}}
{{- if $value -}}
{{- $_ := set $data $env $value -}}
{{- else if $setting.required -}}
{{- fail (printf "%s is required: %s reads %s" ($setting.value | default (printf "config.%s" $env)) $name $env) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Kafka security, as the service will see it. */ -}}
{{- if has "kafka" $spec.uses -}}
{{- $protocol := index $data "KAFKA_SECURITY_PROTOCOL" | default "PLAINTEXT" -}}
{{- if hasPrefix "SASL_" $protocol -}}
{{- if not (and (index $data "KAFKA_SASL_MECHANISM") (index $data "KAFKA_SASL_USERNAME")) -}}
{{- fail (printf "global.kafka.sasl.mechanism and global.kafka.sasl.username are required with global.kafka.securityProtocol %s (%s)" $protocol $name) -}}
{{- end -}}
{{- else if index $data "KAFKA_SASL_MECHANISM" -}}
{{- fail (printf "global.kafka.sasl.mechanism is set but global.kafka.securityProtocol is %s: SASL needs SASL_PLAINTEXT or SASL_SSL (%s)" $protocol $name) -}}
{{- end -}}
{{- end -}}
{{- /* Secret settings. */ -}}
{{- $env := list
  (dict "name" "RAE_SERVICE" "value" $name)
  (dict "name" "RAE_HOST" "value" (required "global.listenHost is required" $values.global.listenHost))
  (dict "name" "RAE_PORT" "value" (toString (include "rae-service.port" (dict "name" $name "service" $svc)))) -}}
{{- $migrateEnv := list (dict "name" "RAE_SERVICE" "value" $name) -}}
{{- $secretValues := dict -}}
{{- range $variable, $setting := $spec.settings -}}
{{- if $setting.secret -}}
{{- $key := index $values.secrets.keys $setting.secretKey -}}
{{- $given := include "rae.valueAt" (dict "root" $root "path" $setting.value) -}}
{{- $needed := or $setting.required (and (eq $variable "KAFKA_SASL_PASSWORD") (hasPrefix "SASL_" (index $data "KAFKA_SECURITY_PROTOCOL" | default ""))) -}}
{{- $ref := dict -}}
{{- if $existing -}}
{{- $ref = dict "name" $secretName "key" $key -}}
{{- if not $needed -}}
{{- $_ := set $ref "optional" true -}}
{{- end -}}
{{- else if $given -}}
{{- $ref = dict "name" $secretName "key" $key -}}
{{- $_ := set $secretValues $key $given -}}
{{- else if $needed -}}
{{- fail (printf "%s is required: %s reads %s (or set secrets.existingSecret)" $setting.value $name $variable) -}}
{{- end -}}
{{- if $ref -}}
{{- $entry := dict "name" $variable "valueFrom" (dict "secretKeyRef" $ref) -}}
{{- $env = append $env $entry -}}
{{- if and $migrate (eq $variable "DATABASE_URL") -}}
{{- $migrationKey := $values.secrets.keys.migrationDatabaseUrl -}}
{{- if not (or $existing $values.global.postgres.migrationUrl) -}}
{{- fail "global.postgres.migrationUrl is required with migrations.initContainer.enabled (or set secrets.existingSecret)" -}}
{{- end -}}
{{- if not $existing -}}
{{- $_ := set $secretValues $migrationKey $values.global.postgres.migrationUrl -}}
{{- end -}}
{{- $entry = dict "name" $variable "valueFrom" (dict "secretKeyRef" (dict "name" $secretName "key" $migrationKey)) -}}
{{- end -}}
{{- $migrateEnv = append $migrateEnv $entry -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Rolled on change: the ConfigMap's data, and what the service reads of the Secret. */ -}}
{{- $secretHash := "" -}}
{{- if $existing -}}
{{- $live := dict -}}
{{- with lookup "v1" "Secret" $root.Release.Namespace $existing -}}
{{- $live = .data | default dict -}}
{{- end -}}
{{- $read := dict -}}
{{- range $entry := concat $env $migrateEnv -}}
{{- with $entry.valueFrom -}}
{{- $_ := set $read .secretKeyRef.key (index $live .secretKeyRef.key | default "") -}}
{{- end -}}
{{- end -}}
{{- $secretHash = toJson (dict "live" $read "rolloutToken" $values.secrets.rolloutToken) | sha256sum -}}
{{- else -}}
{{- $secretHash = toJson $secretValues | sha256sum -}}
{{- end -}}
{{- $podAnnotations := dict "checksum/config" (toJson $data | sha256sum) "checksum/secret" $secretHash -}}
{{- /* Shutdown budget: preStop, then uvicorn's drain, the background loops, 1 s, the pool close. */ -}}
{{- $defaults := $values.defaults -}}
{{- $grace := hasKey $svc "terminationGracePeriodSeconds" | ternary $svc.terminationGracePeriodSeconds $defaults.terminationGracePeriodSeconds -}}
{{- $preStop := hasKey $svc "preStopSleepSeconds" | ternary $svc.preStopSleepSeconds $defaults.preStopSleepSeconds -}}
{{- $parts := list (list "preStopSleepSeconds" $preStop) (list "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" (index $data "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN")) -}}
{{- with index $spec.settings "BACKGROUND_STOP_TIMEOUT_S" -}}
{{- $parts = append $parts (list "BACKGROUND_STOP_TIMEOUT_S" (index $data "BACKGROUND_STOP_TIMEOUT_S" | default .default)) -}}
{{- $parts = append $parts (list "1" 1) -}}
{{- end -}}
{{- with index $spec.settings "DATABASE_CLOSE_TIMEOUT_S" -}}
{{- $parts = append $parts (list "DATABASE_CLOSE_TIMEOUT_S" (index $data "DATABASE_CLOSE_TIMEOUT_S" | default .default)) -}}
{{- end -}}
{{- $budget := 0.0 -}}
{{- $shown := list -}}
{{- range $part := $parts -}}
{{- $budget = addf $budget (float64 (index $part 1)) -}}
{{- $shown = append $shown (eq (index $part 0) "1" | ternary "1" (printf "%s %v" (index $part 0) (index $part 1))) -}}
{{- end -}}
{{- if lt (float64 $grace) $budget -}}
{{- fail (printf "%s: terminationGracePeriodSeconds %v is shorter than the shutdown budget %v s (%s): raise defaults.terminationGracePeriodSeconds or %s.terminationGracePeriodSeconds, or lower those" $name $grace $budget (join " + " $shown) $name) -}}
{{- end -}}
{{- /* Kafka CA file, and the migrate init container. */ -}}
{{- $volumes := list -}}
{{- $mounts := list -}}
{{- if $caFile -}}
{{- $source := dict -}}
{{- if $ca.secretName -}}
{{- $source = dict "secret" (dict "secretName" $ca.secretName "items" (list (dict "key" $ca.key "path" $ca.key))) -}}
{{- else -}}
{{- $source = dict "configMap" (dict "name" $ca.configMapName "items" (list (dict "key" $ca.key "path" $ca.key))) -}}
{{- end -}}
{{- $volumes = append $volumes (merge (dict "name" "kafka-ca") $source) -}}
{{- $mounts = append $mounts (dict "name" "kafka-ca" "mountPath" (include "rae.kafkaCaDir" $root) "readOnly" true) -}}
{{- end -}}
{{- $inits := list -}}
{{- if $migrate -}}
{{- $inits = append $inits (dict "name" "migrate" "command" (list "rae-migrate") "env" $migrateEnv "resources" $values.migrations.initContainer.resources) -}}
{{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "rae-service.labels" (dict "root" $root "name" $name) | nindent 4 }}
data:
  {{- toYaml $data | nindent 2 }}
{{- include "rae-service.all" (dict "root" $root "name" $name "service" $svc "defaults" $defaults "configMapName" $fullname "env" $env "initContainers" $inits "volumes" $volumes "volumeMounts" $mounts "podAnnotations" $podAnnotations "terminationGracePeriodSeconds" $grace "preStopSleepSeconds" $preStop) }}
{{- end -}}
{{- end -}}

{{/* The chart's Secret: every value given for a setting some enabled service reads. */}}
{{- define "rae.secretData" -}}
{{- $root := . -}}
{{- $all := include "rae.settings" . | fromJson -}}
{{- $data := dict -}}
{{- range $name := splitList " " (include "rae.services" $root) -}}
{{- if (index $root.Values $name).enabled -}}
{{- $spec := index $all.services $name -}}
{{- range $variable, $setting := $spec.settings -}}
{{- if $setting.secret -}}
{{- with include "rae.valueAt" (dict "root" $root "path" $setting.value) -}}
{{- $_ := set $data (index $root.Values.secrets.keys $setting.secretKey) (b64enc .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $root.Values.migrations.initContainer.enabled (has "postgres" $spec.uses) $root.Values.global.postgres.migrationUrl -}}
{{- $_ := set $data $root.Values.secrets.keys.migrationDatabaseUrl (b64enc $root.Values.global.postgres.migrationUrl) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $root.Values.tests.enabled $root.Values.secrets.adminToken -}}
{{- $_ := set $data $root.Values.secrets.keys.adminToken (b64enc $root.Values.secrets.adminToken) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}
