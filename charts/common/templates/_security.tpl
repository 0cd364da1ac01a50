{{/*
Hardened security contexts (Pod Security Standard "restricted"): non-root uid/gid 10001 (the
user of services/Dockerfile), read-only root filesystem, no capabilities, no privilege
escalation, the runtime's default seccomp profile. podSecurityContext / securityContext values
are merged over these defaults.
*/}}

{{- define "pinstack.podSecurityContext" -}}
{{- $hardened := dict
  "runAsNonRoot" true
  "runAsUser" 10001
  "runAsGroup" 10001
  "fsGroup" 10001
  "seccompProfile" (dict "type" "RuntimeDefault")
-}}
{{- toYaml (mustMergeOverwrite $hardened (deepCopy (.Values.podSecurityContext | default dict))) -}}
{{- end -}}

{{- define "pinstack.containerSecurityContext" -}}
{{- $hardened := dict
  "runAsNonRoot" true
  "runAsUser" 10001
  "runAsGroup" 10001
  "privileged" false
  "allowPrivilegeEscalation" false
  "readOnlyRootFilesystem" true
  "capabilities" (dict "drop" (list "ALL"))
  "seccompProfile" (dict "type" "RuntimeDefault")
-}}
{{- toYaml (mustMergeOverwrite $hardened (deepCopy (.Values.securityContext | default dict))) -}}
{{- end -}}
