{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already
contains the chart name (`helm install tollgate ...` gives "tollgate"),
else "<release>-<chart>".
*/}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.metricsServiceName" -}}
{{- printf "%s-metrics" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tollgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether more than one replica runs (then a PodDisruptionBudget helps). */}}
{{- define "tollgate.multiReplica" -}}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The `tollgate run` arguments, one quoted list item each. */}}
{{- define "tollgate.args" -}}
- run
- "--http-addr=[::]:8080"
- "--https-addr=[::]:8443"
- "--admin-addr=[::]:9180"
- {{ printf "--ingress-class=%s" .Values.ingressClass.name | quote }}
- {{ printf "--controller-name=%s" .Values.ingressClass.controllerName | quote }}
{{- if .Values.gatewayAPI.enabled }}
- "--gateway-api=true"
- {{ printf "--gateway-controller-name=%s" .Values.gatewayAPI.controllerName | quote }}
{{- else }}
- "--gateway-api=false"
{{- end }}
- {{ printf "--publish-service=%s/%s" .Release.Namespace (include "tollgate.fullname" .) | quote }}
- {{ printf "--election-id=%s" .Values.electionId | quote }}
- {{ printf "--shutdown-grace=%ds" (int .Values.shutdownGraceSeconds) | quote }}
- {{ printf "--log-format=%s" .Values.logFormat | quote }}
{{- if .Values.proxyProtocol }}
- "--proxy-protocol"
{{- end }}
{{- if ne (int .Values.service.ports.https) 443 }}
- {{ printf "--https-redirect-port=%d" (int .Values.service.ports.https) | quote }}
{{- end }}
{{- with .Values.watchNamespaces }}
- {{ printf "--watch-namespace=%s" (join "," .) | quote }}
{{- end }}
{{- with .Values.defaultCertificate }}
- {{ printf "--default-certificate=%s" . | quote }}
{{- end }}
{{- with .Values.hsts }}
- {{ printf "--hsts=%s" . | quote }}
{{- end }}
{{- if .Values.controller.config }}
- {{ printf "--configmap=%s/%s-config" .Release.Namespace (include "tollgate.fullname" .) | quote }}
{{- end }}
{{- if .Values.admissionWebhook.enabled }}
- {{ printf "--admission-addr=[::]:%d" (int .Values.admissionWebhook.port) | quote }}
- {{ printf "--admission-certificate=%s/%s" .Release.Namespace (include "tollgate.admissionSecretName" .) | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The admission webhook's Service and its certificate's Secret. */}}
{{- define "tollgate.admissionServiceName" -}}
{{- printf "%s-admission" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.admissionSecretName" -}}
{{- printf "%s-admission-tls" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The HTTP and HTTPS ports of the controller Services. */}}
{{- define "tollgate.servicePorts" -}}
- name: http
  port: {{ .Values.service.ports.http }}
  targetPort: http
  protocol: TCP
  appProtocol: http
  {{- if and (ne .Values.service.type "ClusterIP") .Values.service.nodePorts.http }}
  nodePort: {{ .Values.service.nodePorts.http }}
  {{- end }}
- name: https
  port: {{ .Values.service.ports.https }}
  targetPort: https
  protocol: TCP
  appProtocol: https
  {{- if and (ne .Values.service.type "ClusterIP") .Values.service.nodePorts.https }}
  nodePort: {{ .Values.service.nodePorts.https }}
  {{- end }}
{{- end }}
