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
{{- end -}}

{{/* where a component's Secrets are mounted, and the settings that name the files */}}
{{- define "stafet.secretsDir" -}}/var/run/secrets/stafet{{- end -}}

{{/* the CloudNativePG cluster's name (a restore is a new cluster under a new name) */}}
{{- define "stafet.clusterName" -}}
{{- .Values.cloudnativepg.clusterName | default (printf "%s-db" (include "stafet.fullname" .)) -}}
{{- end -}}

{{/* the Barman Cloud plugin's ObjectStore of this release (the same across restores) */}}
{{- define "stafet.objectStore" -}}
{{ include "stafet.fullname" . }}-backups
{{- end -}}

{{- define "stafet.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "stafet.fullname" .) -}}
{{- end -}}

{{/* the database URL of a role: no password in it (DATABASE_PASSWORD_FILE has it);
     (dict "root" $ "user" U), and "name" for a database other than database.name */}}
{{- define "stafet.databaseUrl" -}}
{{- $db := .root.Values.database -}}
{{- $host := $db.host | default (printf "%s-rw" (include "stafet.clusterName" .root)) -}}
postgresql://{{ .user }}@{{ $host }}:{{ $db.port }}/{{ .name | default $db.name }}{{ if $db.sslmode }}?sslmode={{ $db.sslmode }}{{ end }}
{{- end -}}

{{/* credentials as files: (dict "root" $ "databaseUser" U "kafkaUser" K-or-empty) */}}
{{- define "stafet.credentialsEnv" -}}
- name: DATABASE_URL
  value: {{ include "stafet.databaseUrl" (dict "root" .root "user" .databaseUser) | quote }}
- name: DATABASE_PASSWORD_FILE
  value: {{ include "stafet.secretsDir" . }}/database/password
{{- if .kafkaUser }}
- name: KAFKA_USERNAME
  value: {{ .kafkaUser | quote }}
- name: KAFKA_PASSWORD_FILE
  value: {{ include "stafet.secretsDir" . }}/kafka/password
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .root.Values.kafka.securityProtocol | quote }}
{{- if .root.Values.kafka.caSecret }}
- name: KAFKA_CA_FILE
  value: {{ include "stafet.secretsDir" . }}/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{/* a Secret as a read-only volume of files: (dict "name" N "secret" S) */}}
{{- define "stafet.secretVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0400
    optional: false
{{- end -}}

{{- define "stafet.contractFiles" -}}
{{- $files := list -}}
{{- range $name, $_ := .Values.contracts -}}{{- $files = append $files (printf "/etc/stafet/%s" $name) -}}{{- end -}}
{{- join "," $files -}}
{{- end -}}

{{- define "stafet.metricsPorts" -}}
{{- $ports := list -}}
{{- range $_, $svc := .Values.services -}}{{- if $svc.enabled -}}{{- $ports = append $ports (int $svc.metricsPort) -}}{{- end -}}{{- end -}}
{{- toYaml (uniq $ports) -}}
{{- end -}}

{{/* The operator's pod knobs of one pod: global values, then the component's own
     (dict "root" $ "own" $svc; `own` empty for the migration Job). Maps merge (the
     component's entry wins), lists append, affinity and priorityClassName replace. */}}
{{- define "stafet.podLabels" -}}
{{- toYaml (merge (dict) (.own.podLabels | default dict) (.root.Values.podLabels | default dict)) -}}
{{- end -}}

{{- define "stafet.podAnnotations" -}}
{{- toYaml (merge (dict) (.own.podAnnotations | default dict) (.root.Values.podAnnotations | default dict)) -}}
{{- end -}}

{{- define "stafet.podScheduling" -}}
{{- $v := .root.Values -}}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (merge (dict) (.own.nodeSelector | default dict) ($v.nodeSelector | default dict)) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat ($v.tolerations | default list) (.own.tolerations | default list)) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.own.affinity | default $v.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.own.priorityClassName | default $v.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{- define "stafet.extraEnv" -}}
{{- with (concat (.root.Values.extraEnv | default list) (.own.extraEnv | default list)) }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{- define "stafet.extraVolumes" -}}
{{- with (concat (.root.Values.extraVolumes | default list) (.own.extraVolumes | default list)) }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{- define "stafet.extraVolumeMounts" -}}
{{- with (concat (.root.Values.extraVolumeMounts | default list) (.own.extraVolumeMounts | default list)) }}
{{- toYaml . }}
{{- end }}
{{- end -}}


{{/* Keys that end (docs/security.md): what the services would refuse at start, refused at
     render. Each signed file is checked for its kind only: its signature is checked by
     every service against TRUST_ROOT_KEYS (Helm has no Ed25519). */}}
{{- define "stafet.signedDocument" -}}
{{- $document := fromYaml .text -}}
{{- if or (hasKey $document "Error") (ne (toString (get $document "kind")) .kind) (not (get $document "signature")) -}}
{{- fail (printf "%s: not a signed %s (kind: %s, with a signature; %s writes it): give the file's content as the CLI wrote it, e.g. --set-file %s=FILE" .value .what .kind .command .value) -}}
{{- end -}}
{{- toYaml $document -}}
{{- end -}}

{{- define "stafet.trustChecks" -}}
{{- $trust := .Values.trust -}}
{{- $production := eq .Values.environment "production" -}}
{{- $ledger := .Values.services.ledger -}}
{{- if and $trust.signedKeyList .Values.trustedKeys -}}
{{- fail "trustedKeys and trust.signedKeyList: give one (the signed list replaces the plain map; list every key in it)" -}}
{{- end -}}
{{- if and $production (not $trust.allowUnsignedTrustedKeys) (or (not $trust.rootKeys) (not $trust.signedKeyList)) -}}
{{- fail "trust.rootKeys and trust.signedKeyList: production needs the keys every service trusts as a list signed by an operator's root key, so that keys can expire and be revoked (stafet keys new --signer operator:NAME; stafet keys sign-list; docs/security.md, \"Keys that end\"); to run on the plain trustedKeys map instead, set trust.allowUnsignedTrustedKeys: true" -}}
{{- end -}}
{{- /* In development operator:dev's well-known key is a root as well; in production only these. */ -}}
{{- if and $production (not $trust.rootKeys) -}}
{{- range $value, $text := dict "trust.revocationList" $trust.revocationList "services.ledger.reanchorDecision" $ledger.reanchorDecision -}}
{{- if $text -}}
{{- fail (printf "%s: signed by an operator's root key, which production trusts only in trust.rootKeys: set them (the services would refuse to start)" $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $trust.signedKeyList -}}
{{- $list := include "stafet.signedDocument" (dict "text" $trust.signedKeyList "value" "trust.signedKeyList" "kind" "stafet_key_list" "what" "key list" "command" "stafet keys sign-list") | fromYaml -}}
{{- $principals := list -}}
{{- range ($list.keys | default list) -}}{{- $principals = append $principals (toString .principal) -}}{{- end -}}
{{- if $production -}}
{{- range $name, $svc := .Values.services -}}
{{- if and $svc.enabled (not (has (printf "service:%s" $name) $principals)) -}}
{{- fail (printf "trust.signedKeyList: production needs the public key of every enabled service, and the list has none for service:%s (stafet keys new --signer service:%s; then sign the list again)" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $trust.revocationList -}}
{{- $_ := include "stafet.signedDocument" (dict "text" $trust.revocationList "value" "trust.revocationList" "kind" "stafet_revocation_list" "what" "revocation list" "command" "stafet keys revoke") -}}
{{- end -}}
{{- if $ledger.reanchorDecision -}}
{{- $_ := include "stafet.signedDocument" (dict "text" $ledger.reanchorDecision "value" "services.ledger.reanchorDecision" "kind" "stafet_ledger_reanchor" "what" "re-anchoring decision" "command" "stafet ledger checkpoints reanchor") -}}
{{- end -}}
{{- end -}}
