{{/*
Every template of this library takes one context dict:
  root              the parent chart's top-level context ($)
  name              the service name (gateway, memory, ...): also its container's name
  service           the service's values block (any key of `defaults` overrides it)
  defaults          pod settings shared by all services (optional)
  configMapName     the ConfigMap of the service's settings (envFrom)
  env               EnvVar entries computed by the parent (RAE_SERVICE, RAE_PORT, Secret references)
  initContainers    init containers computed by the parent (image, envFrom and securityContext added)
  volumes, volumeMounts   added by the parent (e.g. a CA file)
  podAnnotations    extra pod annotations, e.g. config checksums (optional)
  terminationGracePeriodSeconds, preStopSleepSeconds   the shutdown timing, checked by the parent
*/}}

{{/* Release-wide name prefix; 52 characters leave room for "-<service>" within 63. */}}
{{- define "rae-service.releaseFullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rae-service.fullname" -}}
{{- printf "%s-%s" (include "rae-service.releaseFullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rae-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rae-service.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "rae-service.labels" -}}
helm.sh/chart: {{ include "rae-service.chart" .root }}
{{ include "rae-service.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "rae-service.port" -}}
{{- required (printf "%s.port is required" .name) .service.port -}}
{{- end -}}

{{- define "rae-service.image" -}}
{{- $image := .service.image | default dict -}}
{{- $global := dig "image" dict (.root.Values.global | default dict) -}}
{{- $repository := required (printf "%s.image.repository is required" .name) $image.repository -}}
{{- with $global.registry -}}
{{- $repository = printf "%s/%s" . $repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString ($image.tag | default $global.tag | default .root.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "rae-service.imagePullPolicy" -}}
{{- $image := .service.image | default dict -}}
{{- $image.pullPolicy | default (dig "image" "pullPolicy" "IfNotPresent" (.root.Values.global | default dict)) -}}
{{- end -}}

{{- define "rae-service.serviceAccountName" -}}
{{- if dig "serviceAccount" "create" true (.defaults | default dict) -}}
{{- include "rae-service.fullname" . -}}
{{- else -}}
{{- dig "serviceAccount" "name" "default" (.service | default dict) -}}
{{- end -}}
{{- end -}}

{{/* A service's own setting wins over the shared default when it is set (non-empty). */}}
{{- define "rae-service.setting" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $value := index ($ctx.service | default dict) $key | default (index ($ctx.defaults | default dict) $key) -}}
{{- if $value -}}
{{- toYaml $value -}}
{{- end -}}
{{- end -}}
