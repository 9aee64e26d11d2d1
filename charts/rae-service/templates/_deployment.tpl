{{/* Plain values from the parent, overridden by the service's own `env`, then Secret references. */}}
{{- define "rae-service.env" -}}
{{- $plain := merge (dict) (.service.env | default dict) (.env | default dict) -}}
{{- range $name, $value := $plain }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- range $name, $ref := (.secretEnv | default dict) }}
{{- if not (hasKey $plain $name) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- with .service.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

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

{{- define "rae-service.deployment" -}}
{{- $svc := .service -}}
{{- $defaults := .defaults | default dict -}}
{{- $port := include "rae-service.port" . -}}
{{- $annotations := merge (dict) (.podAnnotations | default dict) ($svc.podAnnotations | default dict) ($defaults.podAnnotations | default dict) (dict "prometheus.io/scrape" "true" "prometheus.io/port" $port "prometheus.io/path" "/metrics") -}}
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
      {{- include "rae-service.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "rae-service.labels" . | nindent 8 }}
      annotations:
        {{- toYaml $annotations | nindent 8 }}
    spec:
      serviceAccountName: {{ include "rae-service.serviceAccountName" . }}
      automountServiceAccountToken: false
      {{- with dig "imagePullSecrets" list (.root.Values.global | default dict) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds | default $defaults.terminationGracePeriodSeconds | default 30 }}
      containers:
        - name: {{ .name }}
          image: {{ include "rae-service.image" . | quote }}
          imagePullPolicy: {{ include "rae-service.imagePullPolicy" . }}
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
          {{- with include "rae-service.env" . | trim }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          securityContext:
            runAsNonRoot: true
            runAsUser: 10001
            runAsGroup: 10001
            privileged: false
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
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
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $svc.tmpSizeLimit | default $defaults.tmpSizeLimit | default "64Mi" }}
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
      {{- with include "rae-service.setting" (list . "topologySpreadConstraints") }}
      topologySpreadConstraints:
        {{- . | nindent 8 }}
      {{- end }}
{{- end -}}
