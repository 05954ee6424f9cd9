{{/*
Names and labels. Selector labels are name + instance (+ component) only: custom labels never
leak into immutable selectors.
*/}}

{{- define "prefloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-chart, truncated to 50 so "-<role>-metrics"-style suffixes still fit in 63. */}}
{{- define "prefloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "prefloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prefloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prefloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "prefloop.labels" -}}
helm.sh/chart: {{ include "prefloop.chart" . }}
{{ include "prefloop.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: prefloop
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "prefloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "prefloop.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from {registry, repository, tag, digest}: digest wins over tag; the tag
defaults to the chart's appVersion (plus the optional suffix given as "suffix").
Usage: include "prefloop.image" (dict "image" .Values.image "global" .Values.global "chart" .Chart "suffix" "")
*/}}
{{- define "prefloop.image" -}}
{{- $registry := default .image.registry .global.imageRegistry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s%s" $repo (default .chart.AppVersion .image.tag) (default "" .suffix) -}}
{{- end -}}
{{- end -}}

{{- define "prefloop.operatorImage" -}}
{{- include "prefloop.image" (dict "image" .Values.image "global" .Values.global "chart" .Chart "suffix" "") -}}
{{- end -}}

{{/* The CUDA + vLLM build of the same image (Dockerfile build args CUDA=1 VLLM=1). */}}
{{- define "prefloop.gpuImage" -}}
{{- if .Values.gpuImage.repository -}}
{{- include "prefloop.image" (dict "image" .Values.gpuImage "global" .Values.global "chart" .Chart "suffix" "") -}}
{{- else -}}
{{- include "prefloop.image" (dict "image" .Values.image "global" .Values.global "chart" .Chart "suffix" .Values.gpuImage.tagSuffix) -}}
{{- end -}}
{{- end -}}

{{- define "prefloop.imagePullSecrets" -}}
{{- $secrets := concat (default list .Values.global.imagePullSecrets) (default list .Values.image.pullSecrets) -}}
{{- if $secrets -}}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Namespaces where ActiveRuns may run: the Role, RoleBinding and NetworkPolicy go there. */}}
{{- define "prefloop.runNamespaces" -}}
{{- $list := .Values.rbac.runNamespaces -}}
{{- if not $list }}{{ $list = list .Release.Namespace }}{{ end -}}
{{- toJson (uniq $list) -}}
{{- end -}}

{{/* The name of the kopf peering object the operator replicas meet in. */}}
{{- define "prefloop.peeringName" -}}
{{- default (include "prefloop.fullname" .) .Values.operator.peering.name -}}
{{- end -}}

{{/*
Restricted pod security (Pod Security Standards "restricted"): the pod part and the container
part. Values can add to them but the defaults already pass the standard.
*/}}
{{- define "prefloop.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "prefloop.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Writable scratch space for a read-only root filesystem. */}}
{{- define "prefloop.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "prefloop.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Fail early, with the value at fault, on combinations that cannot work. */}}
{{- define "prefloop.validateValues" -}}
{{- if and .Values.sharedServices.enabled (not .Values.sharedServices.activeRun) -}}
{{- fail "sharedServices.enabled needs sharedServices.activeRun: the ActiveRun manifest the five services are built from" -}}
{{- end -}}
{{- if and (gt (int .Values.operator.replicaCount) 1) (not .Values.operator.peering.enabled) -}}
{{- fail "operator.replicaCount > 1 needs operator.peering.enabled: without peering two replicas would reconcile the same ActiveRun" -}}
{{- end -}}
{{- end -}}
