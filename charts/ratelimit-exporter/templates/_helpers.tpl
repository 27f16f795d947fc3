{{/* The chart's name, or nameOverride. */}}
{{- define "ratelimit-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object names: fullnameOverride, or release and chart name. */}}
{{- define "ratelimit-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "ratelimit-exporter.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "ratelimit-exporter.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ratelimit-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ratelimit-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ratelimit-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ratelimit-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The config file. A key with api_key, or an admin source with admin_key,
would put a secret in a ConfigMap: refused, naming the entry.
*/}}
{{- define "ratelimit-exporter.config" -}}
{{- range $i, $key := .Values.config.keys }}
{{- if hasKey $key "api_key" }}
{{- fail (printf "config.keys[%d]: api_key would put the key in a ConfigMap; put it in the Secret apiKeys.existingSecret and read it with api_key_file: %s/<entry>" $i $.Values.apiKeys.mountPath) }}
{{- end }}
{{- end }}
{{- range $i, $admin := .Values.config.admin }}
{{- if hasKey $admin "admin_key" }}
{{- fail (printf "config.admin[%d]: admin_key would put the admin key in a ConfigMap; put it in the Secret apiKeys.existingSecret and read it with admin_key_file: %s/<entry>" $i $.Values.apiKeys.mountPath) }}
{{- end }}
{{- end }}
{{- toYaml .Values.config }}
{{- end }}
