{{/* Names */}}
{{- define "relayhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relayhub.fullname" -}}
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

{{- define "relayhub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels. Call with (dict "root" $ "component" "api"). */}}
{{- define "relayhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relayhub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "relayhub.labels" -}}
helm.sh/chart: {{ include "relayhub.chart" .root }}
{{ include "relayhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: relayhub
{{- end }}

{{- define "relayhub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relayhub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "relayhub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secrets: which Secret holds what. */}}
{{- define "relayhub.secretName" -}}
{{- default (include "relayhub.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "relayhub.dbSecretName" -}}
{{- if .Values.postgres.existingSecret }}{{ .Values.postgres.existingSecret }}{{ else }}{{ include "relayhub.secretName" . }}{{ end }}
{{- end }}

{{- define "relayhub.dbSecretKey" -}}
{{- if .Values.postgres.existingSecret }}{{ .Values.postgres.existingSecretKey }}{{ else }}{{ .Values.secrets.keys.databaseUrl }}{{ end }}
{{- end }}

{{/* True (non-empty) when this chart writes the database URL into its own Secret. */}}
{{- define "relayhub.chartOwnsDbUrl" -}}
{{- if and (not .Values.postgres.existingSecret) (not .Values.secrets.existingSecret) }}true{{ end }}
{{- end }}

{{/* The in-chart NATS chart's full name (its Service and StatefulSet), as that chart computes it. */}}
{{- define "relayhub.natsFullname" -}}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" .Values.nats.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The NATS chart's pod labels (for NetworkPolicies). */}}
{{- define "relayhub.natsPodLabels" -}}
app.kubernetes.io/name: {{ default "nats" .Values.nats.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end }}

{{/* NATS URL: the in-chart cluster's client Service, or the external URL. */}}
{{- define "relayhub.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "%s://%s:4222" "nats" (include "relayhub.natsFullname" .) }}
{{- else }}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end }}
{{- end }}

{{/*
The Secret with one NATS password per user (files/nats-auth.conf): the chart's, or nats.auth.existingSecret. Named
after the release (not the chart's full name) because the NATS chart's values refer to it too (natsAuthRef).
*/}}
{{- define "relayhub.natsAuthSecretName" -}}
{{- default (printf "%s-nats-auth" .Release.Name) .Values.nats.auth.existingSecret }}
{{- end }}

{{/*
A secretKeyRef body (name, key) for one user's NATS password, callable from the NATS chart's values ($tplYaml):
(dict "values" <the nats values> "release" .Release "user" "api").
*/}}
{{- define "relayhub.natsAuthRef" -}}
name: {{ default (printf "%s-nats-auth" .release.Name) .values.auth.existingSecret }}
key: {{ index .values.auth.keys .user }}
{{- end }}

{{/*
TLS to NATS, as the services see it: on for an external NATS with nats.tls, or for the in-chart one with
nats.config.nats.tls; the CA Secret (key ca.crt) comes from nats.tls.secretName or nats.tlsCA.secretName.
*/}}
{{- define "relayhub.natsTlsCaSecret" -}}
{{- if .Values.nats.enabled }}
{{- if .Values.nats.config.nats.tls.enabled }}
{{- if not (and .Values.nats.tlsCA.enabled .Values.nats.tlsCA.secretName) }}
{{- fail "nats.config.nats.tls needs nats.tlsCA (enabled, secretName): the services verify NATS with its ca.crt" }}
{{- end }}
{{- .Values.nats.tlsCA.secretName }}
{{- end }}
{{- else if .Values.nats.tls.enabled }}
{{- required "nats.tls.secretName is required when nats.tls.enabled" .Values.nats.tls.secretName }}
{{- end }}
{{- end }}

{{/* Where pods mount the NATS CA (its ca.crt is what the services verify the server with). */}}
{{- define "relayhub.natsTlsDir" -}}/etc/relayhub/nats-tls{{- end }}

{{/* The NATS login of one service. Call with (dict "root" $ "user" "api"). */}}
{{- define "relayhub.envNatsLogin" -}}
- name: RH_NATS_USER
  value: {{ .user | quote }}
- name: RH_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "relayhub.natsAuthSecretName" .root }}
      key: {{ index .root.Values.nats.auth.keys .user }}
{{- if include "relayhub.natsTlsCaSecret" .root }}
- name: RH_NATS_TLS_CA
  value: {{ include "relayhub.natsTlsDir" .root }}/ca.crt
{{- end }}
{{- end }}

{{/* Replicas of RelayHub's streams (RH_STREAM_REPLICAS): 0 = automatic. */}}
{{- define "relayhub.streamReplicas" -}}
{{- $r := int .Values.streamReplicas }}
{{- if eq $r 0 }}
{{- $r = 1 }}
{{- if and .Values.nats.enabled .Values.nats.config.cluster.enabled }}{{ $r = int .Values.nats.config.cluster.replicas }}{{ end }}
{{- end }}
{{- $r }}
{{- end }}

{{/* The browsers' WebSocket URL (RH_PUBLIC_WS_URL). */}}
{{- define "relayhub.publicWsUrl" -}}
{{- if .Values.publicWsUrl }}
{{- .Values.publicWsUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := first .Values.ingress.hosts }}
{{- printf "%s://%s/ws" (ternary "wss" "ws" (gt (len .Values.ingress.tls) 0)) $host }}
{{- end }}
{{- end }}

{{/* Env shared by every RelayHub container. */}}
{{- define "relayhub.commonEnv" -}}
- name: RH_NATS_URL
  value: {{ include "relayhub.natsUrl" . | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{- define "relayhub.envJwtSecret" -}}
- name: RH_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "relayhub.secretName" . }}
      key: {{ .Values.secrets.keys.jwtSecret }}
{{- end }}

{{- define "relayhub.envDatabaseUrl" -}}
- name: RH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "relayhub.dbSecretName" . }}
      key: {{ include "relayhub.dbSecretKey" . }}
{{- if .Values.postgres.tls.enabled }}
- name: RH_DATABASE_TLS
  value: "true"
{{- if .Values.postgres.tls.caSecret }}
- name: RH_DATABASE_TLS_CA
  value: {{ include "relayhub.pgTlsDir" . }}/ca.crt
{{- end }}
{{- end }}
{{- end }}

{{/* Where the api and the audit writer mount PostgreSQL's CA (postgres.tls.caSecret). */}}
{{- define "relayhub.pgTlsDir" -}}/etc/relayhub/postgres-tls{{- end }}

{{/* True (non-empty) for a component that reaches PostgreSQL over TLS with a CA of its own. */}}
{{- define "relayhub.pgTlsCa" -}}
{{- if and .root.Values.postgres.tls.enabled .root.Values.postgres.tls.caSecret (has .component (list "api" "audit")) }}true{{ end }}
{{- end }}

{{/*
A RelayHub Deployment. Call with (dict "root" $ "component" "api" "values" .Values.api "env" <yaml list string>
"extraPod" <yaml string, optional> "extraContainer" <yaml string, optional> "strategy" <yaml string, optional>).
The container runs the binary named after the component, logged in to NATS as the user of the same name. Its
port `http` serves /healthz, /readyz, /metrics, unless the component has an `opsPort` (api, edge): then those are
on port `ops` only, which neither the ingress nor the edge's load balancer routes.
*/}}
{{- define "relayhub.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $ctx := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "relayhub.fullname" $root }}-{{ .component }}
  labels:
    {{- include "relayhub.labels" $ctx | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .strategy }}
  strategy:
    {{- . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "relayhub.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "relayhub.labels" $ctx | nindent 8 }}
      annotations:
        {{- if $root.Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ default $v.port $v.opsPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- if include "relayhub.chartOwnsSecret" $root }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "relayhub.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with .extraPod }}
      {{- . | nindent 6 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "relayhub.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ .component | quote }}]
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
            {{- if $v.opsPort }}
            - name: ops
              containerPort: {{ $v.opsPort }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "relayhub.commonEnv" $root | nindent 12 }}
            {{- include "relayhub.envNatsLogin" (dict "root" $root "user" .component) | nindent 12 }}
            {{- .env | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- $probePort := ternary "ops" "http" (not (empty $v.opsPort)) }}
          startupProbe:
            httpGet: { path: /healthz, port: {{ $probePort }} }
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet: { path: /healthz, port: {{ $probePort }} }
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: { path: /readyz, port: {{ $probePort }} }
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          {{- with .extraContainer }}
          {{- . | nindent 10 }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if include "relayhub.natsTlsCaSecret" $root }}
            - name: nats-tls
              mountPath: {{ include "relayhub.natsTlsDir" $root }}
              readOnly: true
            {{- end }}
            {{- if include "relayhub.pgTlsCa" (dict "root" $root "component" .component) }}
            - name: postgres-tls
              mountPath: {{ include "relayhub.pgTlsDir" $root }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with include "relayhub.natsTlsCaSecret" $root }}
        - name: nats-tls
          secret:
            secretName: {{ . }}
            items: [{ key: ca.crt, path: ca.crt }]
        {{- end }}
        {{- if include "relayhub.pgTlsCa" (dict "root" $root "component" .component) }}
        - name: postgres-tls
          secret:
            secretName: {{ $root.Values.postgres.tls.caSecret }}
            items: [{ key: {{ $root.Values.postgres.tls.caSecretKey }}, path: ca.crt }]
        {{- end }}
      {{- if $root.Values.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ $root.Values.topologySpread.topologyKey }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "relayhub.selectorLabels" $ctx | nindent 14 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* True (non-empty) when the chart creates the Secret. */}}
{{- define "relayhub.chartOwnsSecret" -}}
{{- if not .Values.secrets.existingSecret }}true{{ end }}
{{- end }}

{{/* A PodDisruptionBudget. Call with (dict "root" $ "component" "edge" "pdb" .Values.edge.podDisruptionBudget). */}}
{{- define "relayhub.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "relayhub.fullname" .root }}-{{ .component }}
  labels:
    {{- include "relayhub.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "relayhub.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end }}

{{/*
A HorizontalPodAutoscaler for a Deployment (edge, worker): CPU utilisation plus any `extraMetrics` (autoscaling/v2
MetricSpec, e.g. sockets per edge from a custom-metrics adapter), scaling down gently: a removed edge closes its
sockets (clients reconnect elsewhere), a removed worker finishes its answers first.
Call with (dict "root" $ "component" "edge" "autoscaling" .Values.edge.autoscaling).
*/}}
{{- define "relayhub.hpa" -}}
{{- $a := .autoscaling }}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "relayhub.fullname" .root }}-{{ .component }}
  labels:
    {{- include "relayhub.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "relayhub.fullname" .root }}-{{ .component }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- with $a.extraMetrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ $a.scaleDownStabilizationSeconds }}
      policies:
        - { type: Pods, value: 1, periodSeconds: {{ $a.scaleDownPeriodSeconds }} }
{{- end }}
{{- end }}
