{{/*
Value lookups that fall back to the umbrella chart's globals. The most specific value wins:
the chart's own value, then global.*, then the built-in default.
*/}}

{{- define "pinstack.global" -}}
{{- toYaml (.Values.global | default dict) -}}
{{- end -}}

{{/*
Image reference: [registry/]repository(:tag|@digest). Call with (dict "ctx" $ "image" .Values.image).
The tag defaults to global.image.tag, then to the chart's appVersion.
*/}}
{{- define "pinstack.image" -}}
{{- $image := .image | default dict -}}
{{- $global := (fromYaml (include "pinstack.global" .ctx)).image | default dict -}}
{{- $registry := $image.registry | default $global.registry | default "" -}}
{{- $ref := $image.repository -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString ($image.tag | default $global.tag | default .ctx.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{/* imagePullPolicy: image.pullPolicy, global.image.pullPolicy, IfNotPresent. */}}
{{- define "pinstack.imagePullPolicy" -}}
{{- $image := .image | default dict -}}
{{- $global := (fromYaml (include "pinstack.global" .ctx)).image | default dict -}}
{{- $image.pullPolicy | default $global.pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/* imagePullSecrets of the chart plus global.imagePullSecrets, as a pod spec field (or nothing). */}}
{{- define "pinstack.imagePullSecrets" -}}
{{- $global := fromYaml (include "pinstack.global" .) -}}
{{- $secrets := concat (.Values.imagePullSecrets | default list) ($global.imagePullSecrets | default list) | uniq -}}
{{- if $secrets -}}
imagePullSecrets:
  {{- toYaml $secrets | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
A service setting with a global fallback: (list $ "logLevel" "INFO") reads .Values.config.logLevel,
then global.config.logLevel, then "INFO".
*/}}
{{- define "pinstack.config" -}}
{{- $ctx := index . 0 -}}
{{- $key := index . 1 -}}
{{- $global := (fromYaml (include "pinstack.global" $ctx)).config | default dict -}}
{{- $own := $ctx.Values.config | default dict -}}
{{- index $own $key | default (index $global $key) | default (index . 2) -}}
{{- end -}}

{{/* How migrations run: "hook" (a pre-install/pre-upgrade Job) or "initContainer". */}}
{{- define "pinstack.migrationsMode" -}}
{{- $global := (fromYaml (include "pinstack.global" .)).migrations | default dict -}}
{{- $own := .Values.migrations | default dict -}}
{{- $own.mode | default $global.mode | default "hook" -}}
{{- end -}}
