{{/* Names */}}
{{- define "exfilguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "exfilguard.fullname" -}}
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

{{/* Labels: call with (dict "ctx" $ "component" "worker") */}}
{{- define "exfilguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exfilguard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "exfilguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "exfilguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: exfilguard
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "exfilguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "exfilguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "exfilguard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container; the Dockerfile and the program agree on these. */}}
{{- define "exfilguard.configPath" -}}/etc/exfilguard/config.yaml{{- end -}}
{{- define "exfilguard.tlsDir" -}}/etc/exfilguard/tls{{- end -}}
{{- define "exfilguard.dataDir" -}}/var/lib/exfilguard{{- end -}}
{{- define "exfilguard.geoipDir" -}}/etc/exfilguard/geoip{{- end -}}
{{- define "exfilguard.webhookDir" -}}/etc/exfilguard/webhook{{- end -}}

{{- define "exfilguard.ipRangesPath" -}}
{{ include "exfilguard.dataDir" . }}/ip-ranges.json
{{- end -}}

{{/* The detection config file: the non-empty keys of .Values.config, as given. */}}
{{- define "exfilguard.configYaml" -}}
{{- $out := dict -}}
{{- if and .Values.ipRanges.refresh.enabled (not .Values.config.aws_ip_ranges) -}}
{{- $_ := set $out "aws_ip_ranges" (include "exfilguard.ipRangesPath" .) -}}
{{- end -}}
{{- range $key, $value := .Values.config -}}
{{- if not (kindIs "invalid" $value) -}}
{{- if or (kindIs "bool" $value) (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) $value -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* MaxMind DB files mounted from geoip.volume become the geoip mapping, unless turned off. */ -}}
{{- $g := .Values.geoip -}}
{{- if and $g.volume (ne (toString .Values.config.geoip) "false") -}}
{{- $dbs := dict -}}
{{- if $g.countryFile -}}{{- $_ := set $dbs "country_db" (printf "%s/%s" (include "exfilguard.geoipDir" .) $g.countryFile) -}}{{- end -}}
{{- if $g.asnFile -}}{{- $_ := set $dbs "asn_db" (printf "%s/%s" (include "exfilguard.geoipDir" .) $g.asnFile) -}}{{- end -}}
{{- if $dbs -}}{{- $_ := set $out "geoip" $dbs -}}{{- end -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* Checks the schema cannot express; they fail the render with a message. */}}
{{- define "exfilguard.validate" -}}
{{- $k := .Values.kafka -}}
{{- if gt (int .Values.worker.replicas) (int $k.partitions) -}}
{{- fail (printf "worker.replicas (%d) must be at most kafka.partitions (%d): a worker beyond the partition count gets no partition" (int .Values.worker.replicas) (int $k.partitions)) -}}
{{- end -}}
{{- if hasPrefix "SASL" $k.securityProtocol -}}
{{- if not $k.sasl.mechanism -}}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.mechanism" $k.securityProtocol) -}}
{{- end -}}
{{- if and (ne $k.sasl.mechanism "OAUTHBEARER") (not $k.sasl.existingSecret) -}}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.existingSecret (a Secret with keys %s and %s)" $k.securityProtocol $k.sasl.usernameKey $k.sasl.passwordKey) -}}
{{- end -}}
{{- end -}}
{{- if and $k.tls.existingSecret (not (hasSuffix "SSL" $k.securityProtocol)) -}}
{{- fail (printf "kafka.tls.existingSecret is set but kafka.securityProtocol is %s; use SSL or SASL_SSL" $k.securityProtocol) -}}
{{- end -}}
{{- if and $k.tls.existingSecret (not (or $k.tls.caKey $k.tls.certKey)) -}}
{{- fail "kafka.tls.existingSecret needs kafka.tls.caKey or kafka.tls.certKey/keyKey: nothing would be mounted" -}}
{{- end -}}
{{- if ne (empty $k.tls.certKey) (empty $k.tls.keyKey) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together: set both for mutual TLS, or neither" -}}
{{- end -}}
{{- if and (eq $k.sasl.mechanism "OAUTHBEARER") (not $k.awsRegion) -}}
{{- fail "kafka.sasl.mechanism OAUTHBEARER (MSK IAM) needs kafka.awsRegion, the cluster's region" -}}
{{- end -}}
{{- if and (eq $k.findingsEncoding "confluent") (not $k.schemaRegistry.url) -}}
{{- fail "kafka.findingsEncoding confluent needs kafka.schemaRegistry.url" -}}
{{- end -}}
{{- if and .Values.notifiers.webhook.enabled (not .Values.notifiers.webhook.existingSecret) -}}
{{- fail "notifiers.webhook.enabled needs notifiers.webhook.existingSecret (a Secret holding the URL under notifiers.webhook.urlKey)" -}}
{{- end -}}
{{- if and .Values.geoip.volume (not (or .Values.geoip.countryFile .Values.geoip.asnFile)) -}}
{{- fail "geoip.volume needs geoip.countryFile or geoip.asnFile: nothing would be read" -}}
{{- end -}}
{{- if and .Values.forwarder.enabled (not .Values.forwarder.sources) (not .Values.forwarder.sqsQueueUrl) -}}
{{- fail "forwarder.enabled needs forwarder.sources (e.g. s3://bucket/prefix) or forwarder.sqsQueueUrl" -}}
{{- end -}}
{{- if and .Values.forwarder.sources .Values.forwarder.sqsQueueUrl -}}
{{- fail "forwarder.sources and forwarder.sqsQueueUrl exclude each other: the queue names the objects" -}}
{{- end -}}
{{- if .Values.forwarder.enabled -}}
{{- range .Values.forwarder.sources -}}
{{- if not (hasPrefix "s3://" .) -}}
{{- fail (printf "forwarder.sources: the forwarder follows S3 prefixes (s3://bucket/prefix), not %q" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.replay.enabled -}}
{{- if not (and .Values.replay.start .Values.replay.end .Values.replay.outputTopic) -}}
{{- fail "replay.enabled needs replay.start, replay.end and replay.outputTopic" -}}
{{- end -}}
{{- if eq .Values.replay.outputTopic $k.topics.findings -}}
{{- fail "replay.outputTopic must not be the live findings topic (kafka.topics.findings)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every container; call with (dict "ctx" $ "component" "worker").
     Secrets only by reference, never inlined. */}}
{{- define "exfilguard.env" -}}
{{- $ctx := .ctx -}}
{{- $k := $ctx.Values.kafka -}}
{{- $appId := $k.appId -}}
{{- if eq .component "replay" -}}
{{- /* its own consumer group and tables: never join the live workers' group */ -}}
{{- $appId = printf "%s-replay" $k.appId -}}
{{- end -}}
- name: EXFILGUARD_CONFIG
  value: {{ include "exfilguard.configPath" $ctx | quote }}
- name: EXFILGUARD_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: EXFILGUARD_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if and (hasPrefix "SASL" $k.securityProtocol) (eq $k.sasl.mechanism "OAUTHBEARER") }}
- name: EXFILGUARD_SASL_MECHANISM
  value: "OAUTHBEARER"
- name: EXFILGUARD_AWS_REGION
  value: {{ $k.awsRegion | quote }}
{{- else if hasPrefix "SASL" $k.securityProtocol }}
- name: EXFILGUARD_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: EXFILGUARD_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret | quote }}
      key: {{ $k.sasl.usernameKey | quote }}
- name: EXFILGUARD_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret | quote }}
      key: {{ $k.sasl.passwordKey | quote }}
{{- end }}
{{- if $k.tls.existingSecret }}
{{- if $k.tls.caKey }}
- name: EXFILGUARD_SSL_CAFILE
  value: {{ printf "%s/%s" (include "exfilguard.tlsDir" $ctx) $k.tls.caKey | quote }}
{{- end }}
{{- if $k.tls.certKey }}
- name: EXFILGUARD_SSL_CERTFILE
  value: {{ printf "%s/%s" (include "exfilguard.tlsDir" $ctx) $k.tls.certKey | quote }}
- name: EXFILGUARD_SSL_KEYFILE
  value: {{ printf "%s/%s" (include "exfilguard.tlsDir" $ctx) $k.tls.keyKey | quote }}
{{- end }}
{{- end }}
- name: EXFILGUARD_FINDINGS_ENCODING
  value: {{ $k.findingsEncoding | quote }}
{{- if $k.schemaRegistry.url }}
- name: EXFILGUARD_SCHEMA_REGISTRY_URL
  value: {{ $k.schemaRegistry.url | quote }}
{{- if $k.schemaRegistry.existingSecret }}
- name: EXFILGUARD_SCHEMA_REGISTRY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.schemaRegistry.existingSecret | quote }}
      key: {{ $k.schemaRegistry.usernameKey | quote }}
- name: EXFILGUARD_SCHEMA_REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.schemaRegistry.existingSecret | quote }}
      key: {{ $k.schemaRegistry.passwordKey | quote }}
{{- end }}
{{- end }}
- name: EXFILGUARD_TOPIC_INPUT
  value: {{ $k.topics.input | quote }}
- name: EXFILGUARD_TOPIC_FINDINGS
  value: {{ $k.topics.findings | quote }}
- name: EXFILGUARD_TOPIC_DLQ
  value: {{ $k.topics.dlq | quote }}
- name: EXFILGUARD_PARTITIONS
  value: {{ $k.partitions | int | quote }}
- name: EXFILGUARD_REPLICATION_FACTOR
  value: {{ $k.replicationFactor | int | quote }}
- name: EXFILGUARD_APP_ID
  value: {{ $appId | quote }}
- name: EXFILGUARD_DATA_DIR
  value: {{ include "exfilguard.dataDir" $ctx | quote }}
- name: EXFILGUARD_WEB_HOST
  value: "0.0.0.0"
- name: EXFILGUARD_WEB_PORT
  value: {{ $ctx.Values.worker.webPort | int | quote }}
- name: EXFILGUARD_STALL_SECONDS
  value: {{ $k.stallSeconds | int | quote }}
- name: EXFILGUARD_ROCKSDB_WRITE_BUFFER_MB
  value: {{ $k.rocksdbWriteBufferMb | default 2 | int | quote }}
- name: EXFILGUARD_ROCKSDB_BLOCK_CACHE_MB
  value: {{ $k.rocksdbBlockCacheMb | default 4 | int | quote }}
- name: EXFILGUARD_LEGACY_TABLES
  value: {{ ternary "true" "false" (ne $k.legacyTables false) | quote }}
- name: EXFILGUARD_WEB_LIVE_VIEW
  value: {{ $ctx.Values.worker.liveView | default false | toString | quote }}
- name: TMPDIR
  value: /tmp
- name: HOME
  value: /tmp
{{- with $ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts shared by every container (the data volume is added per workload). */}}
{{- define "exfilguard.volumeMounts" -}}
- name: config
  mountPath: /etc/exfilguard/config.yaml
  subPath: config.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "exfilguard.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.geoip.volume }}
- name: geoip
  mountPath: {{ include "exfilguard.geoipDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "exfilguard.volumes" -}}
- name: config
  configMap:
    name: {{ include "exfilguard.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- $tls := .Values.kafka.tls }}
{{- if $tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ $tls.existingSecret | quote }}
    defaultMode: 0440
    items:
      {{- range $key := list $tls.caKey $tls.certKey $tls.keyKey | compact }}
      - key: {{ $key | quote }}
        path: {{ $key | quote }}
      {{- end }}
{{- end }}
{{- with .Values.geoip.volume }}
- name: geoip
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level fields shared by every workload: call with (dict "ctx" $ "pod" .Values.worker) */}}
{{- define "exfilguard.podCommon" -}}
serviceAccountName: {{ include "exfilguard.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "exfilguard.podAnnotations" -}}
checksum/config: {{ include "exfilguard.configYaml" .ctx | sha256sum }}
{{- with .pod.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules shared by every component. */}}
{{- define "exfilguard.egressRules" -}}
{{- $np := .Values.networkPolicy -}}
# DNS: without it no name resolves (Kafka brokers, AWS endpoints).
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $np.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# Kafka brokers: their address blocks and peers when given.
- ports:
    {{- toYaml $np.kafka.ports | nindent 4 }}
  {{- if or $np.kafka.cidrs $np.kafka.to }}
  to:
    {{- range $np.kafka.cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
    {{- with $np.kafka.to }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
# AWS endpoints (S3, STS, EC2): HTTPS to address blocks outside the cluster's networks.
- ports:
    {{- toYaml $np.aws.ports | nindent 4 }}
  to:
    {{- range $np.aws.ipBlocks }}
    - ipBlock:
        {{- toYaml . | nindent 8 }}
    {{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}
