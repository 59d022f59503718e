{{/*
Names. Every object is named after the release ("fullname") plus its component, so that two
releases in one namespace do not collide. Kubernetes names are capped at 63 characters where
they become DNS labels.
*/}}

{{- define "igor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "igor.fullname" -}}
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

{{- define "igor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's Deployment, Service and leader Lease. */}}
{{- define "igor.operator.fullname" -}}
{{- printf "%s-operator" (include "igor.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
The node StatefulSet and its headless Service. Capped at 52 characters: pod names add
"-<ordinal>" and the StatefulSet controller adds a revision hash label of 11 characters.
*/}}
{{- define "igor.node.fullname" -}}
{{- printf "%s-node" (include "igor.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "igor.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "igor.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "igor.node.serviceAccountName" -}}
{{- if .Values.node.serviceAccount.create }}
{{- default (include "igor.node.fullname" .) .Values.node.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.node.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the node API bearer token (the chart's, or one the user manages). */}}
{{- define "igor.nodeToken.secretName" -}}
{{- default (printf "%s-node-token" (include "igor.fullname" .)) .Values.nodeToken.existingSecret }}
{{- end }}

{{/* Where both components find the token file. */}}
{{- define "igor.nodeToken.dir" -}}/var/run/igor/node-token{{- end }}
{{- define "igor.nodeToken.path" -}}{{ include "igor.nodeToken.dir" . }}/{{ .Values.nodeToken.key }}{{- end }}

{{/*
The token's value: the one given in values, else the one already stored in the cluster (so that
`helm upgrade` keeps it), else a new random one. `lookup` returns nothing under `helm template`
and `--dry-run=client`, so those print a throw-away token.
*/}}
{{- define "igor.nodeToken.value" -}}
{{- if .Values.nodeToken.value }}
{{- .Values.nodeToken.value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "igor.nodeToken.secretName" .) }}
{{- if and $existing $existing.data (index $existing.data .Values.nodeToken.key) }}
{{- index $existing.data .Values.nodeToken.key | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The leader-election Lease of the operator. */}}
{{- define "igor.operator.leaseName" -}}
{{- include "igor.operator.fullname" . }}
{{- end }}

{{/* The ValidatingWebhookConfiguration the operator (kopf) creates and keeps up to date. */}}
{{- define "igor.operator.webhookConfigurationName" -}}
{{- printf "%s.%s.igor.dev" (include "igor.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
Standard labels (https://helm.sh/docs/chart_best_practices/labels/). Call with
(dict "ctx" $ "component" "operator").
*/}}
{{- define "igor.labels" -}}
helm.sh/chart: {{ include "igor.chart" .ctx }}
{{ include "igor.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: igor
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select a component's pods: immutable, so no version in them. */}}
{{- define "igor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "igor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* An image reference: repository:tag, or repository@digest when a digest is given. */}}
{{- define "igor.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
The IgorNode names of the pool: a StatefulSet's pod names, <node fullname>-0 .. -(replicas-1).
Each node may write only its own IgorNode and Lease (RBAC resourceNames), so scale the pool
through the chart (node.replicas), which updates these lists.
*/}}
{{- define "igor.node.names" -}}
{{- $base := include "igor.node.fullname" . }}
{{- range $i := until (int .Values.node.replicas) }}
- {{ printf "%s-%d" $base $i }}
{{- end }}
{{- end }}

{{- define "igor.node.leaseNames" -}}
{{- $base := include "igor.node.fullname" . }}
{{- range $i := until (int .Values.node.replicas) }}
- {{ printf "igor-node-%s-%d" $base $i }}
{{- end }}
{{- end }}

{{/* The pod and container security contexts shared by both components. */}}
{{- define "igor.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "igor.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Namespaced rules for the configmaps of agent namespaces, cluster-wide or per namespace
(agentNamespaces). Modules and checkpoints (igor-ckpt-<agent>) live there.
*/}}
{{- define "igor.node.configMapRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  # get: modules and checkpoints; create/update: checkpoints (compare-and-swap on
  # resourceVersion); delete: the checkpoint of an agent that is gone.
  verbs: ["get", "create", "update", "delete"]
{{- end }}

{{- define "igor.operator.configMapRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  # get: modules and checkpoints (the replay gate); create/update: replay bundles
  # (igor-bundle-<migration>), kept for people to fetch.
  verbs: ["get", "create", "update"]
{{- end }}

{{/*
Pod annotations. A token given in values is hashed into them, so that changing it rolls both
components (they read the token file once, at start). A generated token never changes, and an
existingSecret is yours to roll out.
*/}}
{{- define "igor.podAnnotations" -}}
{{- $annotations := dict }}
{{- if and .ctx.Values.nodeToken.value (not .ctx.Values.nodeToken.existingSecret) }}
{{- $_ := set $annotations "igor.dev/node-token-checksum" (.ctx.Values.nodeToken.value | sha256sum | trunc 16) }}
{{- end }}
{{- $annotations = merge $annotations (.extra | default dict) }}
{{- if $annotations }}
annotations:
  {{- toYaml $annotations | nindent 2 }}
{{- end }}
{{- end }}
