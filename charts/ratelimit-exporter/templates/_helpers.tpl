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
{{- $config := deepCopy .Values.config }}
{{- if gt (include "ratelimit-exporter.replicas" . | int) 1 }}
{{- $probe := $config.probe | default dict }}
{{- if not (hasKey $probe "mode") }}
{{- $_ := set $probe "mode" "scrape" }}
{{- else if ne $probe.mode "scrape" }}
{{- fail (printf "config.probe.mode: %q probes on a timer on every replica, and replicas is %s: with more than one replica Prometheus drives the probes through /probe on the Service (scrape mode). Leave probe.mode out (the chart sets scrape) or set it to scrape, or set replicas: 1" (toString $probe.mode) (include "ratelimit-exporter.replicas" .)) }}
{{- end }}
{{- $_ := set $config "probe" $probe }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* replicas, or by default 2 with the proxy (no single point of failure in the applications' traffic) and 1 without. */}}
{{- define "ratelimit-exporter.replicas" -}}
{{- if kindIs "invalid" .Values.replicas }}
{{- ternary 2 1 (not (empty .Values.config.proxy)) }}
{{- else }}
{{- .Values.replicas | int }}
{{- end }}
{{- end }}

{{/*
A duration such as 1m30s, in seconds (a float): the units the exporter's
flags and Prometheus take, as values.schema.json lets them through.
*/}}
{{- define "ratelimit-exporter.seconds" -}}
{{- $seconds := 0.0 }}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 "y" 31536000.0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]+" . }}
{{- $seconds = addf $seconds (mulf (float64 $number) (get $units (trimPrefix $number .))) }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/*
The job label the ServiceMonitor gives: prometheus-operator sets it to the
Service's name, or to the value of the Service's label jobLabel names
when the Service has that label.
*/}}
{{- define "ratelimit-exporter.job" -}}
{{- $serviceLabels := include "ratelimit-exporter.labels" . | fromYaml }}
{{- $job := "" }}
{{- with .Values.serviceMonitor.jobLabel }}
{{- $job = get $serviceLabels . | toString }}
{{- end }}
{{- $job | default (include "ratelimit-exporter.fullname" .) }}
{{- end }}
