{{/* PodDisruptionBudget and HorizontalPodAutoscaler of the API Deployment. */}}

{{- define "pinstack.podDisruptionBudget" -}}
{{- if .Values.podDisruptionBudget.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "pinstack.fullname" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) }}
  minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  # Pods that never became ready may always be evicted (a drain is not blocked by a crash loop).
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
{{- end -}}
{{- end -}}

{{- define "pinstack.horizontalPodAutoscaler" -}}
{{- if .Values.autoscaling.enabled -}}
{{- $as := .Values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "pinstack.fullname" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "pinstack.fullname" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    {{- with $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  behavior:
    scaleDown:
      # Scale down slowly: traffic comes in waves and a cold pod costs more than an idle one.
      stabilizationWindowSeconds: 300
{{- end -}}
{{- end -}}
