{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "minidb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "minidb.fullname" -}}
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

{{- define "minidb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "minidb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "minidb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minidb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "minidb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "minidb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Non-empty when the S3 read cache has a disk tier. */}}
{{- define "minidb.diskCache" -}}
{{- if and (eq .Values.storage.mode "s3") (ne (toString .Values.storage.s3.cache.diskSize) "0") -}}
true
{{- end -}}
{{- end -}}

{{/* The pod template shared by the StatefulSet (local storage) and the Deployment (S3). */}}
{{- define "minidb.podTemplate" -}}
metadata:
  labels:
    {{- include "minidb.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "minidb.serviceAccountName" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: minidb
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
      env:
        - name: MINIDB_FLIGHT_ADDR
          value: "0.0.0.0:{{ .Values.service.grpcPort }}"
        - name: MINIDB_TEXT_ADDR
          value: "0.0.0.0:{{ .Values.service.textPort }}"
        {{- if .Values.metrics.enabled }}
        - name: MINIDB_METRICS_ADDR
          value: "0.0.0.0:{{ .Values.metrics.port }}"
        {{- end }}
        {{- if eq .Values.storage.mode "s3" }}
        - name: MINIDB_DATA
          value: {{ .Values.storage.s3.location | quote }}
        {{- with .Values.storage.s3.endpoint }}
        - name: MINIDB_S3_ENDPOINT
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.storage.s3.region }}
        - name: MINIDB_S3_REGION
          value: {{ . | quote }}
        {{- end }}
        - name: MINIDB_S3_ALLOW_HTTP
          value: {{ .Values.storage.s3.allowHttp | quote }}
        - name: MINIDB_S3_MAX_RETRIES
          value: {{ .Values.storage.s3.maxRetries | quote }}
        - name: MINIDB_S3_RETRY_TIMEOUT_MS
          value: {{ .Values.storage.s3.retryTimeoutMs | quote }}
        - name: MINIDB_CACHE_MEMORY
          value: {{ .Values.storage.s3.cache.memory | quote }}
        {{- if include "minidb.diskCache" . }}
        - name: MINIDB_CACHE_DIR
          value: /var/cache/minidb
        - name: MINIDB_CACHE_SIZE
          value: {{ .Values.storage.s3.cache.diskSize | quote }}
        {{- end }}
        {{- else }}
        - name: MINIDB_DATA
          value: /data
        {{- end }}
        - name: MINIDB_CONCURRENCY
          value: {{ .Values.server.concurrency | quote }}
        - name: MINIDB_LOCK_TIMEOUT_MS
          value: {{ .Values.server.lockTimeoutMs | quote }}
        - name: MINIDB_COMPACTION_INTERVAL_MS
          value: {{ .Values.server.compactionIntervalMs | quote }}
        - name: MINIDB_COMPACTION_MIN_SMALL_FILES
          value: {{ .Values.server.compactionMinSmallFiles | quote }}
        - name: MINIDB_COMPACTION_DELETED_RATIO
          value: {{ .Values.server.compactionDeletedRatio | quote }}
        - name: MINIDB_FLIGHT_PLAIN_STRINGS
          value: {{ .Values.server.flightPlainStrings | quote }}
        {{- if .Values.server.memoryLimit }}
        - name: MINIDB_MEMORY_LIMIT
          value: {{ .Values.server.memoryLimit | quote }}
        {{- end }}
        - name: MINIDB_STATEMENT_TIMEOUT_MS
          value: {{ .Values.server.statementTimeoutMs | quote }}
        - name: MINIDB_MAX_CONCURRENT_QUERIES
          value: {{ .Values.server.maxConcurrentQueries | quote }}
        - name: MINIDB_MAX_QUEUED_QUERIES
          value: {{ .Values.server.maxQueuedQueries | quote }}
        - name: RUST_LOG
          value: {{ .Values.server.logLevel | quote }}
        {{- if .Values.auth.enabled }}
        - name: MINIDB_USERS_FILE
          value: /etc/minidb/auth/users
        - name: MINIDB_AUTH_TOKEN_SECRET
          valueFrom:
            secretKeyRef:
              name: {{ .Values.auth.existingSecret }}
              key: {{ .Values.auth.tokenSecretKey }}
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: MINIDB_TLS_CERT
          value: /etc/minidb/tls/tls.crt
        - name: MINIDB_TLS_KEY
          value: /etc/minidb/tls/tls.key
        {{- end }}
        {{- with .Values.server.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if and (eq .Values.storage.mode "s3") .Values.storage.s3.credentialsSecret }}
      envFrom:
        - secretRef:
            name: {{ .Values.storage.s3.credentialsSecret }}
      {{- end }}
      ports:
        - name: grpc
          containerPort: {{ .Values.service.grpcPort }}
          protocol: TCP
        - name: text
          containerPort: {{ .Values.service.textPort }}
          protocol: TCP
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      {{- /* Kubernetes' gRPC probes speak plaintext only: behind TLS, probe the port. */}}
      livenessProbe:
        {{- if .Values.tls.enabled }}
        tcpSocket:
          port: grpc
        {{- else }}
        grpc:
          port: {{ .Values.service.grpcPort }}
        {{- end }}
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        {{- if .Values.tls.enabled }}
        tcpSocket:
          port: grpc
        {{- else }}
        grpc:
          port: {{ .Values.service.grpcPort }}
        {{- end }}
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.storage.mode "local" }}
        - name: data
          mountPath: /data
        {{- end }}
        {{- if include "minidb.diskCache" . }}
        - name: cache
          mountPath: /var/cache/minidb
        {{- end }}
        {{- if .Values.auth.enabled }}
        - name: auth
          mountPath: /etc/minidb/auth
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: /etc/minidb/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if include "minidb.diskCache" . }}
    - name: cache
      emptyDir: {}
    {{- end }}
    {{- if .Values.auth.enabled }}
    - name: auth
      secret:
        secretName: {{ .Values.auth.existingSecret }}
        items:
          - key: {{ .Values.auth.usersKey }}
            path: users
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
