{{- define "rae-service.probe" -}}
{{- $ctx := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $path := index . 2 -}}
{{- $timing := mergeOverwrite (dict) (dig "probes" $kind dict ($ctx.defaults | default dict)) (dig "probes" $kind dict $ctx.service) -}}
httpGet:
  path: {{ $path }}
  port: http
{{- with $timing }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A list of `defaults` followed by the service's own (extraEnv, sidecars, ...). */}}
{{- define "rae-service.list" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $items := concat (index ($ctx.defaults | default dict) $key | default list) (index $ctx.service $key | default list) -}}
{{- if $items -}}
{{- toYaml $items -}}
{{- end -}}
{{- end -}}

{{- define "rae-service.deployment" -}}
{{- $svc := .service -}}
{{- $defaults := .defaults | default dict -}}
{{- $port := include "rae-service.port" . -}}
{{- $selector := include "rae-service.selectorLabels" . | fromYaml -}}
{{- $labels := merge (include "rae-service.labels" . | fromYaml) ($svc.podLabels | default dict) ($defaults.podLabels | default dict) -}}
{{- $annotations := merge (dict) (.podAnnotations | default dict) ($svc.podAnnotations | default dict) ($defaults.podAnnotations | default dict) (dict "prometheus.io/scrape" "true" "prometheus.io/port" $port "prometheus.io/path" "/metrics") -}}
{{- $containerSecurity := include "rae-service.setting" (list . "containerSecurityContext") -}}
{{- $spread := list -}}
{{- range $constraint := (index $svc "topologySpreadConstraints" | default $defaults.topologySpreadConstraints | default list) -}}
{{- $spread = append $spread (merge (dict) $constraint (dict "labelSelector" (dict "matchLabels" $selector))) -}}
{{- end -}}
{{- $env := concat (.env | default list) ($defaults.extraEnv | default list) ($svc.extraEnv | default list) -}}
{{- $envFrom := concat (list (dict "configMapRef" (dict "name" .configMapName))) ($defaults.envFrom | default list) ($svc.envFrom | default list) -}}
{{- $mounts := concat (list (dict "name" "tmp" "mountPath" "/tmp")) (.volumeMounts | default list) ($defaults.extraVolumeMounts | default list) ($svc.extraVolumeMounts | default list) -}}
{{- $volumes := concat (list (dict "name" "tmp" "emptyDir" (dict "sizeLimit" ($svc.tmpSizeLimit | default $defaults.tmpSizeLimit | default "64Mi")))) (.volumes | default list) ($defaults.extraVolumes | default list) ($svc.extraVolumes | default list) -}}
{{- $image := include "rae-service.image" . -}}
{{- $pullPolicy := include "rae-service.imagePullPolicy" . -}}
{{- $inits := list -}}
{{- range $init := (.initContainers | default list) -}}
{{- $init = merge (dict "image" $image "imagePullPolicy" $pullPolicy "envFrom" $envFrom "volumeMounts" (list (dict "name" "tmp" "mountPath" "/tmp"))) $init -}}
{{- if $containerSecurity -}}
{{- $_ := set $init "securityContext" ($containerSecurity | fromYaml) -}}
{{- end -}}
{{- $inits = append $inits $init -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "rae-service.fullname" . }}
  labels:
    {{- include "rae-service.labels" . | nindent 4 }}
spec:
  {{- if not (dig "autoscaling" "enabled" false $svc) }}
  replicas: {{ hasKey $svc "replicas" | ternary $svc.replicas 1 }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- toYaml $labels | nindent 8 }}
      annotations:
        {{- toYaml $annotations | nindent 8 }}
    spec:
      serviceAccountName: {{ include "rae-service.serviceAccountName" . }}
      automountServiceAccountToken: false
      {{- with dig "imagePullSecrets" list (.root.Values.global | default dict) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "rae-service.setting" (list . "podSecurityContext") }}
      securityContext:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with include "rae-service.setting" (list . "priorityClassName") }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .terminationGracePeriodSeconds | default 30 }}
      {{- with concat ($defaults.initContainers | default list) ($svc.initContainers | default list) $inits }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ $image | quote }}
          imagePullPolicy: {{ $pullPolicy }}
          command:
            - rae-serve
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
          envFrom:
            {{- toYaml $envFrom | nindent 12 }}
          env:
            {{- toYaml $env | nindent 12 }}
          {{- with $containerSecurity }}
          securityContext:
            {{- . | nindent 12 }}
          {{- end }}
          {{- if .preStopSleepSeconds }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ .preStopSleepSeconds }}
          {{- end }}
          startupProbe:
            {{- include "rae-service.probe" (list . "startup" "/healthz") | nindent 12 }}
          livenessProbe:
            {{- include "rae-service.probe" (list . "liveness" "/healthz") | nindent 12 }}
          readinessProbe:
            {{- include "rae-service.probe" (list . "readiness" "/readyz") | nindent 12 }}
          {{- with $svc.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- toYaml $mounts | nindent 12 }}
        {{- with include "rae-service.list" (list . "sidecars") }}
        {{- . | nindent 8 }}
        {{- end }}
      volumes:
        {{- toYaml $volumes | nindent 8 }}
      {{- with include "rae-service.setting" (list . "nodeSelector") }}
      nodeSelector:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with include "rae-service.setting" (list . "affinity") }}
      affinity:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with include "rae-service.setting" (list . "tolerations") }}
      tolerations:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with $spread }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
