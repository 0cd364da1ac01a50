{{/* Service, ServiceMonitor/PodMonitor, Ingress and ServiceAccount of a Pinstack service. */}}

{{- define "pinstack.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "pinstack.serviceAccountName" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" .) | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
{{- end -}}

{{/* The API's Service: port 80 (name http) to the container's 8080. */}}
{{- define "pinstack.k8sService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "pinstack.fullname" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "api") | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
      {{- if and (ne .Values.service.type "ClusterIP") .Values.service.nodePort }}
      nodePort: {{ .Values.service.nodePort }}
      {{- end }}
{{- end -}}

{{/*
Prometheus Operator objects, rendered only when the cluster serves monitoring.coreos.com/v1
(helm template: pass --api-versions monitoring.coreos.com/v1).
*/}}
{{- define "pinstack.hasPrometheusOperator" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}

{{- define "pinstack.serviceMonitor" -}}
{{- if and .Values.serviceMonitor.enabled (include "pinstack.hasPrometheusOperator" .) -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "pinstack.fullname" . }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "api") | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.serviceMonitor.scrapeTimeout }}
{{- end -}}
{{- end -}}

{{/* The worker has no Service: Prometheus scrapes its pods directly. */}}
{{- define "pinstack.workerPodMonitor" -}}
{{- if and .Values.worker.enabled .Values.serviceMonitor.enabled (include "pinstack.hasPrometheusOperator" .) -}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ include "pinstack.suffixedName" (dict "ctx" . "suffix" "worker") }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "worker") | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "pinstack.selectorLabels" (dict "ctx" . "component" "worker") | nindent 6 }}
  podMetricsEndpoints:
    - port: metrics
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.serviceMonitor.scrapeTimeout }}
{{- end -}}
{{- end -}}

{{/* An Ingress to the API's Service (the gateway's; disabled by default). */}}
{{- define "pinstack.ingress" -}}
{{- $ingress := .Values.ingress | default dict -}}
{{- if $ingress.enabled -}}
{{- $fullname := include "pinstack.fullname" . -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "pinstack.labels" (dict "ctx" . "component" "api") | nindent 4 }}
  {{- with $ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range $ingress.hosts }}
    - {{- with .host }}
      host: {{ . | quote }}
      {{- end }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: {{ .pathType | default "Prefix" }}
            backend:
              service:
                name: {{ $fullname }}
                port:
                  name: http
          {{- end }}
    {{- end }}
{{- end -}}
{{- end -}}
