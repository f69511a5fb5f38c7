{{/*
Names. Namespaced objects use the full name; cluster-scoped ones (and the Roles placed in
other namespaces) use modeldeploy.rbacName, which holds the release name and namespace, so two
releases of the chart never collide on them.
*/}}
{{- define "modeldeploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.fullname" -}}
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

{{- define "modeldeploy.rbacName" -}}
{{- printf "modeldeploy:%s:%s" .Release.Namespace .Release.Name }}
{{- end }}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: modeldeploy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modeldeploy.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Cross-field checks the schema cannot phrase clearly. Included by every template that depends
on them, so `helm template --show-only` fails the same way as a full render.
*/}}
{{- define "modeldeploy.validate" -}}
{{- $namespaces := without .Values.watchNamespaces "" }}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- if not $namespaces }}
{{- fail "rbac.scope=namespaced needs the namespaces to serve: set watchNamespaces, e.g. --set 'watchNamespaces={team-a,team-b}'" }}
{{- end }}
{{- else if $namespaces }}
{{- fail "watchNamespaces is only used with rbac.scope=namespaced; with rbac.scope=cluster the operator serves every namespace" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas above 1 need leaderElection.enabled=true: without it, every replica would reconcile every model" }}
{{- end }}
{{- if and .Values.leaderElection.enabled (ge (int .Values.leaderElection.renewSeconds) (int .Values.leaderElection.leaseSeconds)) }}
{{- fail "leaderElection.renewSeconds must be below leaderElection.leaseSeconds" }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor selects that Service" }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules. They must be exactly modeldeploy.rbac.PERMISSIONS (plus
PULL_SECRET_CHECK when verifyImagePullSecrets is true): tests/unit/test_chart.py fails on
any difference, so a permission is added in rbac.py first, with the reason, then here.
*/}}
{{- define "modeldeploy.rules" -}}
- apiGroups: ["modeldeploy.io"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["modeldeploy.io"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["modeldeploy.io"]
  resources: ["modelruntimes"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.verifyImagePullSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end }}

{{/*
Reading ClusterModelRuntimes (modeldeploy.rbac.CLUSTER_RUNTIMES): in the ClusterRole with
rbac.scope=cluster, in a ClusterRole of its own with rbac.scope=namespaced.
*/}}
{{- define "modeldeploy.clusterRuntimeRules" -}}
- apiGroups: ["modeldeploy.io"]
  resources: ["clustermodelruntimes"]
  verbs: ["list", "watch"]
{{- end }}

{{/*
The shipped runtimes are hooks (see templates/runtimes.yaml).
*/}}
{{- define "modeldeploy.runtimeHook" -}}
helm.sh/hook: post-install,post-upgrade,post-rollback
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}
