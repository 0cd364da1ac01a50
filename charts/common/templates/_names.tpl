{{/*
Names and labels. A service chart names its objects "<release>-<service>", never shortened when
the release name already contains the service name: the other services (their <SERVICE>_URL),
the connection Secrets written by the operator and the docs compute every name from the release
alone.
*/}}

{{/* The Pinstack service (or component) a chart deploys: the chart's name, e.g. "users". */}}
{{- define "pinstack.service" -}}
{{- .Chart.Name -}}
{{- end -}}

{{/* app.kubernetes.io/name: the chart name unless nameOverride is set. */}}
{{- define "pinstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object of the release: "<release>-<chart>", or fullnameOverride. */}}
{{- define "pinstack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pinstack.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Name of a chart that is installed on its own (the operator, the CRDs): the release name when it
already contains the chart name ("pinstack-operator", not "pinstack-operator-pinstack-operator"),
else "<release>-<chart>". Service charts keep pinstack.fullname, which other services rely on.
*/}}
{{- define "pinstack.releaseFullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "pinstack.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pinstack.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
"<base>-<suffix>" within the 63 characters of a DNS label; base defaults to pinstack.fullname.
Call with (dict "ctx" $ "suffix" "worker" ["base" "..."]).
*/}}
{{- define "pinstack.suffixedName" -}}
{{- $base := .base | default (include "pinstack.fullname" .ctx) | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base .suffix -}}
{{- end -}}

{{- define "pinstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "pinstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pinstack.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Recommended labels (app.kubernetes.io/*). Call with (dict "ctx" $ "component" "api"). */}}
{{- define "pinstack.labels" -}}
{{ include "pinstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: pinstack
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "pinstack.chart" .ctx }}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "pinstack.serviceAccountName" -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "pinstack.fullname" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the service's connection settings (DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX,
KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX, JWT_PRIVATE_KEY for auth). The operator writes it as
"<environment>-<service>-connection"; the umbrella chart names its PinstackEnvironment after the
release, hence "<release>-<service>-connection". connection.existingSecret overrides it.
*/}}
{{- define "pinstack.connectionSecretName" -}}
{{- $conn := .Values.connection | default dict -}}
{{- $conn.existingSecret | default (printf "%s-%s-connection" .Release.Name (include "pinstack.service" .)) -}}
{{- end -}}

{{/* In-cluster URL of a Pinstack service of the same release: http://<release>-<service>:80. */}}
{{- define "pinstack.serviceUrl" -}}
{{- printf "http://%s-%s:80" .ctx.Release.Name .service -}}
{{- end -}}
