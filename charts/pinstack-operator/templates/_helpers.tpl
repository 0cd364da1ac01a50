{{/* Names used by the operator chart's templates (the rest comes from charts/common). */}}

{{- define "pinstack-operator.fullname" -}}
{{- include "pinstack.releaseFullname" . -}}
{{- end -}}

{{- define "pinstack-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "pinstack-operator.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Arguments of `python -m pinstack_operator`: Kopf's run options. */}}
{{- define "pinstack-operator.args" -}}
- --liveness=http://0.0.0.0:{{ .Values.health.port }}/healthz
{{- if .Values.watch.allNamespaces }}
- --all-namespaces
{{- else }}
{{- range .Values.watch.namespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
{{- if .Values.peering.enabled }}
- --peering={{ .Values.peering.name }}
- --priority={{ .Values.peering.priority }}
{{- else }}
- --standalone
{{- end }}
{{- if eq .Values.logLevel "DEBUG" }}
- --debug
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* A probe of Kopf's liveness endpoint. */}}
{{- define "pinstack-operator.probe" -}}
httpGet:
  path: /healthz
  port: health
{{- toYaml (omit . "enabled") | nindent 0 }}
{{- end -}}
