{{/* Names: <release>-sockmesh unless the release is called sockmesh-something already. */}}
{{- define "sockmesh.fullname" -}}
{{- if contains "sockmesh" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sockmesh" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sockmesh.agentName" -}}{{ include "sockmesh.fullname" . }}-agent{{- end -}}
{{- define "sockmesh.controlplaneName" -}}{{ include "sockmesh.fullname" . }}-controlplane{{- end -}}

{{- define "sockmesh.caSecretName" -}}
{{- .Values.ca.existingSecret | default (printf "%s-ca" (include "sockmesh.fullname" .)) -}}
{{- end -}}

{{- define "sockmesh.bootstrapSecretName" -}}
{{- .Values.bootstrap.existingSecret | default (printf "%s-bootstrap" (include "sockmesh.fullname" .)) -}}
{{- end -}}

{{- define "sockmesh.agentServiceAccount" -}}
{{- .Values.serviceAccount.agentName | default (include "sockmesh.agentName" .) -}}
{{- end -}}

{{- define "sockmesh.controlplaneServiceAccount" -}}
{{- .Values.serviceAccount.controlplaneName | default (include "sockmesh.controlplaneName" .) -}}
{{- end -}}

{{- define "sockmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels every object carries; selectors use the smaller set below. */}}
{{- define "sockmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: sockmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sockmesh
{{- end -}}

{{- define "sockmesh.selectorLabels" -}}
app.kubernetes.io/name: sockmesh
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The control plane's address as agents dial it: the Service's cluster DNS name. */}}
{{- define "sockmesh.controlplaneAddress" -}}
{{- printf "%s.%s.svc:%d" (include "sockmesh.controlplaneName" .) .Release.Namespace (int .Values.controlplane.port) -}}
{{- end -}}

{{/*
The agent's capabilities, exactly (docs/install.md "Capabilities"):
  BPF        load programs and create maps (bpf())
  PERFMON    the socket casts the programs call (bpf_skc_to_tcp_sock, ...): the kernel
             offers them only to a loader with it
  NET_ADMIN  attach cgroup networking programs and sockmaps
and with the fast path on:
  SYS_ADMIN  setns() into a pod's network namespace to learn its cookie
  SYS_PTRACE open /proc/<pid>/ns/net of pod processes whose capabilities meshd lacks
*/}}
{{- define "sockmesh.agentCapabilities" -}}
- BPF
- PERFMON
- NET_ADMIN
{{- if .Values.agent.fastPath }}
- SYS_ADMIN
- SYS_PTRACE
{{- end }}
{{- end -}}

{{- define "sockmesh.onOff" -}}{{ if . }}on{{ else }}off{{ end }}{{- end -}}

{{/* Checks the schema cannot express; each fails the render with the values named. */}}
{{- define "sockmesh.validate" -}}
{{- $a := .Values.agent -}}
{{- $ports := list $a.outboundPort $a.tunnelPort $a.metricsPort $a.healthPort -}}
{{- if ne (len $ports) (len (uniq $ports)) -}}
{{- fail (printf "agent.outboundPort (%v), agent.tunnelPort (%v), agent.metricsPort (%v) and agent.healthPort (%v) must differ: all four listen on the node's address" $a.outboundPort $a.tunnelPort $a.metricsPort $a.healthPort) -}}
{{- end -}}
{{- if eq (int .Values.controlplane.port) (int .Values.controlplane.metricsPort) -}}
{{- fail (printf "controlplane.port and controlplane.metricsPort must differ (both %v)" .Values.controlplane.port) -}}
{{- end -}}
{{- if and (not .Values.ca.create) (not .Values.ca.existingSecret) -}}
{{- fail "ca.create is false and ca.existingSecret is empty: name the Secret (tls.crt, tls.key) that holds the mesh's CA, or let the chart create one" -}}
{{- end -}}
{{- if and .Values.agent.fastPathAgentHops (not .Values.agent.fastPath) -}}
{{- fail "agent.fastPathAgentHops needs agent.fastPath" -}}
{{- end -}}
{{- end -}}
