{{- define "stafet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "stafet.labels" -}}
app.kubernetes.io/name: stafet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "ingest") */}}
{{- define "stafet.selector" -}}
app.kubernetes.io/name: stafet
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "stafet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* a topic's name on the broker: (dict "root" $ "topic" "payments") */}}
{{- define "stafet.topic" -}}
{{ .root.Values.topicNamespace }}.{{ .topic }}.v1
{{- end -}}

{{- define "stafet.group" -}}
{{ .root.Values.topicNamespace }}-{{ .service }}
{{- end -}}

{{/* the restricted Pod Security Standard, for every container */}}
{{- define "stafet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* environment shared by the services and the migration Job */}}
{{- define "stafet.commonEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: STAFET_TOPIC_NAMESPACE
  value: {{ .Values.topicNamespace | quote }}
- name: STAFET_ENV
  value: {{ .Values.environment | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: STAFET_SECRETS_DIR
  value: /var/run/secrets/stafet/credentials
{{- end -}}

{{- define "stafet.contractFiles" -}}
{{- $files := list -}}
{{- range $name, $_ := .Values.contracts -}}{{- $files = append $files (printf "/etc/stafet/%s" $name) -}}{{- end -}}
{{- join "," $files -}}
{{- end -}}

{{- define "stafet.httpPorts" -}}
{{- $ports := list -}}
{{- range $_, $svc := .Values.services -}}{{- if $svc.enabled -}}{{- $ports = append $ports (int $svc.httpPort) -}}{{- end -}}{{- end -}}
{{- toYaml (uniq $ports) -}}
{{- end -}}

{{- define "stafet.acl" -}}
- resource: {type: {{ .type }}, name: {{ .name | quote }}, patternType: {{ .pattern | default "literal" }}}
  operations: {{ toJson .operations }}
{{- end }}
{{- define "stafet.kafkaUser" -}}
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata:
  name: {{ .name }}
  labels:
    {{- include "stafet.labels" .root | nindent 4 }}
    strimzi.io/cluster: {{ .root.Values.kafka.clusterName }}
spec:
  authentication:
    type: scram-sha-512
  authorization:
    type: simple
    acls:
      {{- range .reads }}
      {{- include "stafet.acl" (dict "type" "topic" "name" (include "stafet.topic" (dict "root" $.root "topic" .)) "operations" (list "Read" "Describe")) | nindent 6 }}
      {{- end }}
      {{- range .writes }}
      {{- include "stafet.acl" (dict "type" "topic" "name" (include "stafet.topic" (dict "root" $.root "topic" .)) "operations" (list "Write" "Describe")) | nindent 6 }}
      {{- end }}
      {{- if .group }}
      {{- include "stafet.acl" (dict "type" "group" "name" .group "pattern" (.groupPattern | default "literal") "operations" (list "Read" "Describe")) | nindent 6 }}
      {{- end }}
{{- end }}
