{{/*
The API Deployment: `python -m pinstack_kit.serve` (pinstack_<service>.main:create_app) on port
8080 (the image's default command), /healthz for liveness and start-up, /readyz for readiness.
*/}}
{{- define "pinstack.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port | default "http" }}
{{- toYaml (omit .probe "enabled") | nindent 0 }}
{{- end -}}

{{- define "pinstack.deployment" -}}
{{- $migrationsInit := and .Values.migrations.enabled (eq (include "pinstack.migrationsMode" .) "initContainer") -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "pinstack.fullname" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Never go below the desired count during a rollout: new pods must be ready first.
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
  template:
    metadata:
      {{- include "pinstack.podMetadata" (dict "ctx" . "component" "api") | nindent 6 }}
    spec:
      {{- include "pinstack.podSpecCommon" . | nindent 6 }}
      {{- include "pinstack.scheduling" (dict "ctx" . "component" "api") | nindent 6 }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      {{- if $migrationsInit }}
      initContainers:
        {{- include "pinstack.migrationsContainer" . | nindent 8 }}
      {{- end }}
      containers:
        - name: api
          {{- include "pinstack.containerCommon" . | nindent 10 }}
          {{- include "pinstack.env" (dict "ctx" .) | nindent 10 }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          {{- with .Values.probes }}
          {{- if .startup.enabled }}
          startupProbe:
            {{- include "pinstack.probe" (dict "path" "/healthz" "probe" .startup) | nindent 12 }}
          {{- end }}
          {{- if .liveness.enabled }}
          livenessProbe:
            {{- include "pinstack.probe" (dict "path" "/healthz" "probe" .liveness) | nindent 12 }}
          {{- end }}
          {{- if .readiness.enabled }}
          readinessProbe:
            {{- include "pinstack.probe" (dict "path" "/readyz" "probe" .readiness) | nindent 12 }}
          {{- end }}
          {{- end }}
          {{- if .Values.preStopSleepSeconds }}
          lifecycle:
            # Keep serving while the endpoint removal reaches every proxy, then take SIGTERM.
            preStop:
              exec:
                command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
          {{- end }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      volumes:
        {{- include "pinstack.tmpVolume" . | nindent 8 }}
{{- end -}}

{{/*
The worker Deployment (outbox relay and Kafka consumers): `python -m pinstack_<service>.worker`.
It serves Prometheus metrics and /healthz on WORKER_METRICS_PORT: a loop that dies ends the
process, a loop that is wedged fails the probes; the kubelet restarts it either way.
*/}}
{{- define "pinstack.workerDeployment" -}}
{{- if .Values.worker.enabled -}}
{{- $migrationsInit := and .Values.migrations.enabled (eq (include "pinstack.migrationsMode" .) "initContainer") -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "pinstack.suffixedName" (dict "ctx" . "suffix" "worker") }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "worker") | nindent 4 }}
spec:
  replicas: {{ .Values.worker.replicaCount }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "worker") | nindent 6 }}
  template:
    metadata:
      {{- include "pinstack.podMetadata" (dict "ctx" . "component" "worker") | nindent 6 }}
    spec:
      {{- include "pinstack.podSpecCommon" . | nindent 6 }}
      {{- include "pinstack.scheduling" (dict "ctx" . "component" "worker") | nindent 6 }}
      # The worker finishes its batch and commits offsets within 20 s of SIGTERM.
      terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}
      {{- if $migrationsInit }}
      initContainers:
        {{- include "pinstack.migrationsContainer" . | nindent 8 }}
      {{- end }}
      containers:
        - name: worker
          command: ["python", "-m", "pinstack_{{ include "pinstack.service" . }}.worker"]
          {{- include "pinstack.containerCommon" . | nindent 10 }}
          {{- include "pinstack.env" (dict "ctx" . "extra" (dict "WORKER_METRICS_PORT" .Values.worker.metricsPort "WORKER_METRICS_HOST" "0.0.0.0")) | nindent 10 }}
          ports:
            - name: metrics
              containerPort: {{ .Values.worker.metricsPort }}
              protocol: TCP
          {{- /* The worker's /healthz (metrics port) turns 503 when a consumer or the relay has
          not beaten for two minutes: a wedged loop gets the pod restarted. The API's probe
          settings apply (the debug profile's liveness off included). */}}
          {{- with .Values.probes }}
          {{- if .startup.enabled }}
          startupProbe:
            {{- include "pinstack.probe" (dict "path" "/healthz" "port" "metrics" "probe" .startup) | nindent 12 }}
          {{- end }}
          {{- if .liveness.enabled }}
          livenessProbe:
            {{- include "pinstack.probe" (dict "path" "/healthz" "port" "metrics" "probe" .liveness) | nindent 12 }}
          {{- end }}
          {{- if .readiness.enabled }}
          readinessProbe:
            {{- include "pinstack.probe" (dict "path" "/healthz" "port" "metrics" "probe" .readiness) | nindent 12 }}
          {{- end }}
          {{- end }}
          {{- with .Values.worker.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      volumes:
        {{- include "pinstack.tmpVolume" . | nindent 8 }}
{{- end -}}
{{- end -}}

{{/*
Migrations as a Job run by Helm before the release's objects are created or upgraded
(migrations.mode=hook, the default). With migrations.mode=initContainer the API and worker pods
migrate before they start instead (the tool is idempotent and advisory-locked); use that when the
connection Secret appears only after the install, e.g. on the first install of the umbrella
chart with environment.create=true. The Job runs as the namespace's default ServiceAccount: hook
Jobs start before the release's own ServiceAccount exists, and it needs no API access anyway.
*/}}
{{- define "pinstack.migrationsJob" -}}
{{- if and .Values.migrations.enabled (eq (include "pinstack.migrationsMode" .) "hook") -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "pinstack.suffixedName" (dict "ctx" . "suffix" "migrations") }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "migrations") | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    # A failed Job stays for inspection until the next install or upgrade replaces it.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .Values.migrations.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.migrations.activeDeadlineSeconds }}
  template:
    metadata:
      {{- include "pinstack.podMetadata" (dict "ctx" . "component" "migrations") | nindent 6 }}
    spec:
      restartPolicy: Never
      {{- $common := fromYaml (include "pinstack.podSpecCommon" .) }}
      {{- $_ := unset $common "serviceAccountName" }}
      {{- toYaml $common | nindent 6 }}
      containers:
        {{- include "pinstack.migrationsContainer" . | nindent 8 }}
      volumes:
        {{- include "pinstack.tmpVolume" . | nindent 8 }}
{{- end -}}
{{- end -}}
