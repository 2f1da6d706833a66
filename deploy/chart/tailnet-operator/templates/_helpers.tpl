{{/* Names, labels, image references and the credentials check shared by the templates. */}}

{{- define "tailnet-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name, plus the chart name unless the release name already contains it. */}}
{{- define "tailnet-operator.fullname" -}}
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

{{- define "tailnet-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tailnet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tailnet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tailnet-operator.labels" -}}
helm.sh/chart: {{ include "tailnet-operator.chart" . }}
{{ include "tailnet-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tailnet-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
One fully qualified image reference: registry/repository@digest when a digest is given (it pins
the content, so it wins over the tag), else registry/repository:tag (default: appVersion).
Call with (dict "image" <values> "registry" <fallback registry> "appVersion" <version>).
*/}}
{{- define "tailnet-operator.imageRef" -}}
{{- $registry := default .registry .image.registry -}}
{{- $repository := printf "%s/%s" $registry .image.repository -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .appVersion .image.tag) -}}
{{- end -}}
{{- end }}

{{- define "tailnet-operator.operatorImage" -}}
{{- include "tailnet-operator.imageRef" (dict "image" .Values.image "registry" .Values.image.registry "appVersion" .Chart.AppVersion) -}}
{{- end }}

{{- define "tailnet-operator.proxyImage" -}}
{{- include "tailnet-operator.imageRef" (dict "image" .Values.proxy.image "registry" .Values.image.registry "appVersion" .Chart.AppVersion) -}}
{{- end }}

{{/* True ("true") when the chart creates the credentials Secret from values. */}}
{{- define "tailnet-operator.credentialsFromValues" -}}
{{- $cp := .Values.controlPlane -}}
{{- if or $cp.oauth.clientId $cp.oauth.clientSecret $cp.headscale.apiKey }}true{{ end -}}
{{- end }}

{{/*
Name of the Secret holding the control-plane credentials, after checking that the values give
exactly one complete source for the chosen control plane (and a login server for Headscale).
*/}}
{{- define "tailnet-operator.credentialsSecret" -}}
{{- $cp := .Values.controlPlane -}}
{{- $oauth := or $cp.oauth.clientId $cp.oauth.clientSecret -}}
{{- if eq $cp.type "headscale" -}}
  {{- if not $cp.loginServer -}}
    {{- fail "controlPlane.type=headscale needs controlPlane.loginServer: the Headscale server's URL, e.g. --set controlPlane.loginServer=https://headscale.example.com" -}}
  {{- end -}}
  {{- if $oauth -}}
    {{- fail "controlPlane.oauth.clientId/clientSecret are Tailscale OAuth credentials, but controlPlane.type=headscale: give controlPlane.headscale.apiKey or controlPlane.existingSecret instead" -}}
  {{- end -}}
  {{- if and $cp.existingSecret $cp.headscale.apiKey -}}
    {{- fail "give the Headscale API key ONE way: controlPlane.existingSecret or controlPlane.headscale.apiKey, not both" -}}
  {{- end -}}
  {{- if not (or $cp.existingSecret $cp.headscale.apiKey) -}}
    {{- fail "controlPlane.type=headscale needs an API key: set controlPlane.existingSecret (a Secret in the release namespace with key api-key) or controlPlane.headscale.apiKey" -}}
  {{- end -}}
{{- else -}}
  {{- if $cp.headscale.apiKey -}}
    {{- fail "controlPlane.headscale.apiKey is a Headscale credential, but controlPlane.type=tailscale: give controlPlane.oauth.clientId/clientSecret or controlPlane.existingSecret instead (or set controlPlane.type=headscale)" -}}
  {{- end -}}
  {{- if and $cp.existingSecret $oauth -}}
    {{- fail "give the Tailscale OAuth client ONE way: controlPlane.existingSecret or controlPlane.oauth.clientId/clientSecret, not both" -}}
  {{- end -}}
  {{- if and $oauth (not (and $cp.oauth.clientId $cp.oauth.clientSecret)) -}}
    {{- fail "controlPlane.oauth needs both clientId and clientSecret" -}}
  {{- end -}}
  {{- if not (or $cp.existingSecret $oauth) -}}
    {{- fail "controlPlane.type=tailscale needs an OAuth client: set controlPlane.existingSecret (a Secret in the release namespace with keys client_id and client_secret) or controlPlane.oauth.clientId and controlPlane.oauth.clientSecret" -}}
  {{- end -}}
{{- end -}}
{{- /*
The existing Secret must be there, or the operator pods wait in ContainerCreating with nothing
but an Event. lookup answers only against a cluster (empty under `helm template` and client-side
dry runs), so the check runs only when it sees the release namespace.
*/ -}}
{{- if and $cp.existingSecret (lookup "v1" "Namespace" "" .Release.Namespace) (not (lookup "v1" "Secret" .Release.Namespace $cp.existingSecret)) -}}
  {{- fail (printf "controlPlane.existingSecret: Secret %s not found in namespace %s: create it first, see docs/install.md" $cp.existingSecret .Release.Namespace) -}}
{{- end -}}
{{- default (printf "%s-credentials" (include "tailnet-operator.fullname" .)) $cp.existingSecret -}}
{{- end }}

{{/* PROXY_ENV: NAME=value pairs, sorted so that renders are stable. */}}
{{- define "tailnet-operator.proxyEnv" -}}
{{- $pairs := list -}}
{{- range $name := keys .Values.proxy.env | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $name (get $.Values.proxy.env $name | toString)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end }}

{{/* The operator container's environment, shared by the Deployment and the uninstall hook. */}}
{{- define "tailnet-operator.env" -}}
{{- $cp := .Values.controlPlane -}}
- name: OPERATOR_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
# The pod's name is its identity in the leader Lease.
- name: LEADER_ELECTION_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
# Also with one replica: a rollout (helm upgrade) or a deleted pod runs the old pod, draining,
# beside its successor, and both must not act at once.
- name: LEADER_ELECTION
  value: "true"
{{- $le := .Values.leaderElection }}
{{- if not (and (lt (float64 $le.retryPeriodSeconds) (float64 $le.renewDeadlineSeconds)) (lt (float64 $le.renewDeadlineSeconds) (float64 $le.leaseDurationSeconds))) }}
{{- fail (printf "leaderElection: needs retryPeriodSeconds (%v) < renewDeadlineSeconds (%v) < leaseDurationSeconds (%v)" $le.retryPeriodSeconds $le.renewDeadlineSeconds $le.leaseDurationSeconds) }}
{{- end }}
- name: LEASE_DURATION_SECONDS
  value: {{ int $le.leaseDurationSeconds | quote }}
- name: RENEW_DEADLINE_SECONDS
  value: {{ $le.renewDeadlineSeconds | quote }}
- name: RETRY_PERIOD_SECONDS
  value: {{ $le.retryPeriodSeconds | quote }}
- name: CONTROL_PLANE
  value: {{ $cp.type | quote }}
{{- with $cp.loginServer }}
- name: OPERATOR_LOGIN_SERVER
  value: {{ . | quote }}
{{- end }}
{{- if eq $cp.type "headscale" }}
- name: HEADSCALE_API_KEY_FILE
  value: /etc/tailnet-operator/api-key
{{- else }}
- name: TAILSCALE_API_URL
  value: {{ $cp.tailscaleApiUrl | quote }}
- name: CLIENT_ID_FILE
  value: /etc/tailnet-operator/client_id
- name: CLIENT_SECRET_FILE
  value: /etc/tailnet-operator/client_secret
{{- end }}
- name: PROXY_IMAGE
  value: {{ include "tailnet-operator.proxyImage" . | quote }}
- name: PROXY_TAGS
  value: {{ .Values.proxy.tags | quote }}
- name: PROXY_FIREWALL_MODE
  value: {{ .Values.proxy.firewallMode | quote }}
- name: PROXY_FORWARDING
  value: {{ .Values.proxy.forwarding | quote }}
{{- with include "tailnet-operator.proxyEnv" . }}
- name: PROXY_ENV
  value: {{ . | quote }}
{{- end }}
- name: PROXY_RESOURCES
  value: {{ .Values.proxy.resources | toJson | quote }}
- name: OPERATOR_DEFAULT_LOAD_BALANCER
  value: {{ .Values.defaultLoadBalancer | quote }}
- name: OPERATOR_WORKERS
  value: {{ int .Values.workers | quote }}
- name: KUBE_API_QPS
  value: {{ .Values.kubeApi.qps | quote }}
- name: KUBE_API_BURST
  value: {{ int .Values.kubeApi.burst | quote }}
- name: ORPHAN_KEY_SWEEP
  value: {{ .Values.orphanKeySweep | quote }}
- name: ORPHAN_KEY_SWEEP_TAGS
  value: {{ join "," .Values.orphanKeySweepTags | quote }}
- name: OPERATOR_LOGGING
  value: {{ .Values.logLevel | quote }}
- name: NODE_OPTIONS
  value: {{ printf "--max-old-space-size=%d --max-semi-space-size=%d" (int .Values.maxOldSpaceSizeMiB) (int .Values.maxSemiSpaceSizeMiB) | quote }}
- name: MALLOC_ARENA_MAX
  value: {{ int .Values.mallocArenaMax | quote }}
- name: OPERATOR_DEPLOYMENT
  value: {{ include "tailnet-operator.fullname" . | quote }}
{{- $api := .Values.apiServerProxy }}
{{- if and $api.http $api.tls.secretName }}
{{- fail "apiServerProxy: http=true serves no certificate; leave tls.secretName empty" }}
{{- end }}
{{- if ne $api.mode "disabled" }}
- name: APISERVER_PROXY
  value: {{ $api.mode | quote }}
- name: APISERVER_PROXY_HOSTNAME
  value: {{ $api.hostname | quote }}
{{- with $api.tags }}
- name: APISERVER_PROXY_TAGS
  value: {{ . | quote }}
{{- end }}
{{- with $api.tls.secretName }}
- name: APISERVER_PROXY_TLS_SECRET
  value: {{ . | quote }}
{{- end }}
- name: APISERVER_PROXY_HTTP
  value: {{ $api.http | quote }}
- name: APISERVER_PROXY_SERVICE_ACCOUNT
  value: {{ include "tailnet-operator.apiServerProxyName" . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}

{{/* The operator container's security context (Pod Security "restricted"). */}}
{{- define "tailnet-operator.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The credentials volume: only the keys this control plane needs. */}}
{{- define "tailnet-operator.credentialsVolume" -}}
{{- $secret := include "tailnet-operator.credentialsSecret" . -}}
{{- $cp := .Values.controlPlane -}}
# Only the keys this control plane needs; a missing key keeps the pod from starting
# with an Event that names it.
- name: credentials
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
    items:
      {{- if eq $cp.type "headscale" }}
      - key: api-key
        path: api-key
      {{- else }}
      - key: client_id
        path: client_id
      - key: client_secret
        path: client_secret
      {{- end }}
{{- end }}

{{/* The API server proxy's ServiceAccount (and, in auth mode, its ClusterRole and binding). */}}
{{- define "tailnet-operator.apiServerProxyName" -}}
{{- printf "%s-apiserver-proxy" (include "tailnet-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
ACME settings of the operator (the Deployment only: uninstall needs none). Checked here too, so
that a bad combination fails the install instead of the operator's start.
*/}}
{{- define "tailnet-operator.acmeEnv" -}}
{{- $acme := .Values.acme -}}
{{- $eab := $acme.eab -}}
{{- if and (not $acme.directoryUrl) (or $acme.caBundle $acme.email $acme.profile $eab.keyId $eab.hmacKeySecret.name) -}}
{{- fail "acme: caBundle, email, profile and eab need acme.directoryUrl (the CA's ACME directory)" -}}
{{- end -}}
{{- if ne (not $eab.keyId) (not $eab.hmacKeySecret.name) -}}
{{- fail "acme.eab: keyId and hmacKeySecret.name go together (the external account binding needs both)" -}}
{{- end -}}
{{- if lt (int $acme.maxOrdersPerWeek) (int $acme.maxOrdersPerHour) -}}
{{- fail "acme.maxOrdersPerWeek must be at least acme.maxOrdersPerHour" -}}
{{- end -}}
{{- if $acme.directoryUrl }}
- name: ACME_DIRECTORY_URL
  value: {{ $acme.directoryUrl | quote }}
- name: ACME_MAX_ORDERS_PER_HOUR
  value: {{ int $acme.maxOrdersPerHour | quote }}
- name: ACME_MAX_ORDERS_PER_WEEK
  value: {{ int $acme.maxOrdersPerWeek | quote }}
{{- with $acme.email }}
- name: ACME_EMAIL
  value: {{ . | quote }}
{{- end }}
{{- if ne (default "http-01" $acme.challenge) "http-01" }}
- name: ACME_CHALLENGE
  value: {{ $acme.challenge | quote }}
{{- end }}
{{- with $acme.profile }}
- name: ACME_PROFILE
  value: {{ . | quote }}
{{- end }}
{{- if $acme.caBundle }}
- name: ACME_CA_BUNDLE_FILE
  value: /etc/tailnet-operator-acme/ca/ca.pem
{{- end }}
{{- if $eab.keyId }}
- name: ACME_EAB_KEY_ID
  value: {{ $eab.keyId | quote }}
- name: ACME_EAB_HMAC_KEY_FILE
  value: /etc/tailnet-operator-acme/eab/hmac-key
{{- end }}
{{- end }}
{{- end }}

{{/* Mounts and volumes of the ACME CA bundle and EAB key, when configured. */}}
{{- define "tailnet-operator.acmeMounts" -}}
{{- if and .Values.acme.directoryUrl .Values.acme.caBundle }}
- name: acme-ca
  mountPath: /etc/tailnet-operator-acme/ca
  readOnly: true
{{- end }}
{{- if and .Values.acme.directoryUrl .Values.acme.eab.keyId }}
- name: acme-eab
  mountPath: /etc/tailnet-operator-acme/eab
  readOnly: true
{{- end }}
{{- end }}

{{- define "tailnet-operator.acmeVolumes" -}}
{{- if and .Values.acme.directoryUrl .Values.acme.caBundle }}
- name: acme-ca
  configMap:
    name: {{ include "tailnet-operator.fullname" . }}-acme-ca
{{- end }}
{{- if and .Values.acme.directoryUrl .Values.acme.eab.keyId }}
- name: acme-eab
  secret:
    secretName: {{ .Values.acme.eab.hmacKeySecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.acme.eab.hmacKeySecret.key }}
        path: hmac-key
{{- end }}
{{- end }}
