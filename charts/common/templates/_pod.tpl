{{/* Pieces shared by the pods of a service: API, worker and migrations. */}}

{{/* Pod-level fields every Pinstack pod has. */}}
{{- define "pinstack.podSpecCommon" -}}
serviceAccountName: {{ include "pinstack.serviceAccountName" . }}
# The services never call the Kubernetes API: no token in the pod.
automountServiceAccountToken: false
# No <SERVICE>_PORT/_HOST variables injected for every Service of the namespace.
enableServiceLinks: false
securityContext:
  {{- include "pinstack.podSecurityContext" . | nindent 2 }}
{{- with include "pinstack.imagePullSecrets" . }}
{{ . }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Spread replicas over zones and nodes, and prefer not to put two on one node. Explicit affinity or
topologySpreadConstraints values replace these defaults. Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "pinstack.scheduling" -}}
{{- $selector := include "pinstack.selectorLabels" . -}}
affinity:
{{- if .ctx.Values.affinity }}
  {{- toYaml .ctx.Values.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- $selector | nindent 14 }}
{{- end }}
topologySpreadConstraints:
{{- if .ctx.Values.topologySpreadConstraints }}
  {{- toYaml .ctx.Values.topologySpreadConstraints | nindent 2 }}
{{- else }}
{{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - topologyKey: {{ . }}
    maxSkew: 1
    whenUnsatisfiable: ScheduleAnyway
    matchLabelKeys: [pod-template-hash]
    labelSelector:
      matchLabels:
        {{- $selector | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod template metadata. Call with (dict "ctx" $ "component" "api"). */}}
{{- define "pinstack.podMetadata" -}}
labels:
  {{- include "pinstack.labels" . | nindent 2 }}
  {{- with .ctx.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .ctx.Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Plain (non-secret) environment: ENVIRONMENT, LOG_LEVEL, the in-cluster URL of every upstream
service (<SERVICE>_URL), JWKS_URL when the chart verifies tokens, then .extra and the env value,
which win. Entries are unique and sorted, so server-side apply and diffs stay stable.
Call with (dict "ctx" $ "extra" (dict ...)).
*/}}
{{- define "pinstack.env" -}}
{{- $ctx := .ctx -}}
{{- $env := dict
  "ENVIRONMENT" (include "pinstack.config" (list $ctx "environment" "production"))
  "LOG_LEVEL" (include "pinstack.config" (list $ctx "logLevel" "INFO"))
-}}
{{- range $ctx.Values.upstreams -}}
{{- $_ := set $env (printf "%s_URL" (upper .)) (include "pinstack.serviceUrl" (dict "ctx" $ctx "service" .)) -}}
{{- end -}}
{{- if $ctx.Values.jwks -}}
{{- $_ := set $env "JWKS_URL" (printf "%s/.well-known/jwks.json" (include "pinstack.serviceUrl" (dict "ctx" $ctx "service" "auth"))) -}}
{{- end -}}
{{- range $name, $value := .extra -}}
{{- $_ := set $env $name (toString $value) -}}
{{- end -}}
{{- range $name, $value := $ctx.Values.env -}}
{{- $_ := set $env $name (toString $value) -}}
{{- end -}}
env:
{{- range $name, $value := $env }}
  - name: {{ $name }}
    value: {{ $value | quote }}
{{- end }}
envFrom:
  # Connection settings written by the operator (or by hand); explicit env entries above win.
  - secretRef:
      name: {{ include "pinstack.connectionSecretName" $ctx }}
  {{- with $ctx.Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Container fields shared by every container of a service. */}}
{{- define "pinstack.containerCommon" -}}
image: {{ include "pinstack.image" (dict "ctx" . "image" .Values.image) }}
imagePullPolicy: {{ include "pinstack.imagePullPolicy" (dict "ctx" . "image" .Values.image) }}
securityContext:
  {{- include "pinstack.containerSecurityContext" . | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* The read-only root filesystem leaves /tmp as the only writable place. */}}
{{- define "pinstack.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* The migrations container: python -m pinstack_kit.migrate (idempotent, advisory-locked). */}}
{{- define "pinstack.migrationsContainer" -}}
- name: migrations
  command: ["python", "-m", "pinstack_kit.migrate", "/app/migrations"]
  {{- include "pinstack.containerCommon" . | nindent 2 }}
  {{- include "pinstack.env" (dict "ctx" .) | nindent 2 }}
  {{- with .Values.migrations.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
