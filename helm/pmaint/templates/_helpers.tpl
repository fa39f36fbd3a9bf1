{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "pmaint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pmaint.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pmaint.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pmaint.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pmaint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pmaint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pmaint.workerSelectorLabels" -}}
{{ include "pmaint.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "pmaint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pmaint.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference; "gpu" true appends worker.gpu.imageTagSuffix (the CUDA build). */}}
{{- define "pmaint.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if .gpu -}}{{- $tag = printf "%s%s" $tag .root.Values.worker.gpu.imageTagSuffix -}}{{- end -}}
{{- printf "%s:%s" .root.Values.image.repository $tag -}}
{{- end -}}

{{- define "pmaint.secretDir" -}}/run/secrets/pmaint{{- end -}}

{{/* Env vars naming the mounted secret files (PMAINT_*_FILE) and TLS file paths. */}}
{{- define "pmaint.secretEnv" -}}
{{- $dir := include "pmaint.secretDir" . -}}
{{- with .Values.secrets -}}
{{- if .kafkaSaslPassword.existingSecret }}
- name: PMAINT_KAFKA_SASL_PASSWORD_FILE
  value: {{ printf "%s/kafka-sasl/%s" $dir .kafkaSaslPassword.key | quote }}
{{- end }}
{{- if .kafkaTls.existingSecret }}
- name: PMAINT_KAFKA_SSL_CAFILE
  value: {{ printf "%s/kafka-tls/%s" $dir .kafkaTls.caKey | quote }}
{{- if .kafkaTls.certKey }}
- name: PMAINT_KAFKA_SSL_CERTFILE
  value: {{ printf "%s/kafka-tls/%s" $dir .kafkaTls.certKey | quote }}
{{- end }}
{{- if .kafkaTls.keyKey }}
- name: PMAINT_KAFKA_SSL_KEYFILE
  value: {{ printf "%s/kafka-tls/%s" $dir .kafkaTls.keyKey | quote }}
{{- end }}
{{- end }}
{{- if .influxToken.existingSecret }}
- name: PMAINT_INFLUX_TOKEN_FILE
  value: {{ printf "%s/influx-token/%s" $dir .influxToken.key | quote }}
{{- end }}
{{- if .influxPassword.existingSecret }}
- name: PMAINT_INFLUX_PASSWORD_FILE
  value: {{ printf "%s/influx-password/%s" $dir .influxPassword.key | quote }}
{{- end }}
{{- if .webToken.existingSecret }}
- name: PMAINT_WEB_TOKEN_FILE
  value: {{ printf "%s/web-token/%s" $dir .webToken.key | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Volumes for the existing Secrets (each key projected to a file of the same name). */}}
{{- define "pmaint.secretVolumes" -}}
{{- with .Values.secrets -}}
{{- if .kafkaSaslPassword.existingSecret }}
- name: kafka-sasl
  secret:
    secretName: {{ .kafkaSaslPassword.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .kafkaSaslPassword.key }}
        path: {{ .kafkaSaslPassword.key }}
{{- end }}
{{- if .kafkaTls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .kafkaTls.existingSecret }}
    defaultMode: 0440
    items:
      {{- range (list .kafkaTls.caKey .kafkaTls.certKey .kafkaTls.keyKey) }}
      {{- if . }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
      {{- end }}
{{- end }}
{{- if .influxToken.existingSecret }}
- name: influx-token
  secret:
    secretName: {{ .influxToken.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .influxToken.key }}
        path: {{ .influxToken.key }}
{{- end }}
{{- if .influxPassword.existingSecret }}
- name: influx-password
  secret:
    secretName: {{ .influxPassword.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .influxPassword.key }}
        path: {{ .influxPassword.key }}
{{- end }}
{{- if .webToken.existingSecret }}
- name: web-token
  secret:
    secretName: {{ .webToken.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .webToken.key }}
        path: {{ .webToken.key }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "pmaint.secretVolumeMounts" -}}
{{- $dir := include "pmaint.secretDir" . -}}
{{- range $name, $secret := dict "kafka-sasl" .Values.secrets.kafkaSaslPassword "kafka-tls" .Values.secrets.kafkaTls "influx-token" .Values.secrets.influxToken "influx-password" .Values.secrets.influxPassword "web-token" .Values.secrets.webToken }}
{{- if $secret.existingSecret }}
- name: {{ $name }}
  mountPath: {{ printf "%s/%s" $dir $name }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}
