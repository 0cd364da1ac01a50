{{/*
Entry points for the service charts: each chart's templates/*.yaml is one include of these.
Disabled parts render nothing.
*/}}

{{/* ServiceAccount, API Deployment, worker Deployment, migrations Job, HPA and PDB. */}}
{{- define "pinstack.workloads" -}}
{{- include "pinstack.validate" . }}
{{- range $part := list "pinstack.serviceAccount" "pinstack.deployment" "pinstack.workerDeployment" "pinstack.migrationsJob" "pinstack.horizontalPodAutoscaler" "pinstack.podDisruptionBudget" }}
{{- $doc := include $part $ }}
{{- if trim $doc }}
---
{{ $doc }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Service, Ingress, ServiceMonitor and worker PodMonitor. */}}
{{- define "pinstack.network" -}}
{{- range $part := list "pinstack.k8sService" "pinstack.ingress" "pinstack.serviceMonitor" "pinstack.workerPodMonitor" }}
{{- $doc := include $part $ }}
{{- if trim $doc }}
---
{{ $doc }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Checks the schema cannot express. */}}
{{- define "pinstack.validate" -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage)) -}}
{{- fail "autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- end -}}

{{/* NOTES.txt of a service chart. */}}
{{- define "pinstack.notes" -}}
{{ include "pinstack.service" . }} {{ .Chart.AppVersion }} is deployed as {{ include "pinstack.fullname" . }} in namespace {{ .Release.Namespace }}.

In the cluster it answers on {{ include "pinstack.serviceUrl" (dict "ctx" . "service" (include "pinstack.service" .)) }}
(/healthz, /readyz, /metrics).

Its pods read their connection settings from the Secret "{{ include "pinstack.connectionSecretName" . }}"
(DATABASE_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS, ...). The Pinstack operator writes it for a
PinstackEnvironment named "{{ .Release.Name }}"; until it exists the pods wait in
CreateContainerConfigError:
  kubectl -n {{ .Release.Namespace }} get secret {{ include "pinstack.connectionSecretName" . }}
{{- end -}}
