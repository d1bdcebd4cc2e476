{{/* Names, labels and the derived values every template shares. */}}

{{- define "phems-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "phems-connector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "phems-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "phems-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "phems-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "phems-connector.labels" -}}
helm.sh/chart: {{ include "phems-connector.chart" . }}
{{ include "phems-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: phems
{{- end -}}

{{/* The connector pods (not the bundled database, not the test pod). */}}
{{- define "phems-connector.connectorSelector" -}}
{{ include "phems-connector.selectorLabels" . }}
app.kubernetes.io/component: connector
{{- end -}}

{{- define "phems-connector.postgresName" -}}
{{- printf "%s-postgresql" (include "phems-connector.fullname" .) -}}
{{- end -}}

{{- define "phems-connector.postgresSelector" -}}
{{ include "phems-connector.selectorLabels" . }}
app.kubernetes.io/component: postgresql
{{- end -}}

{{- define "phems-connector.generatedSecretName" -}}
{{- printf "%s-generated" (include "phems-connector.fullname" .) -}}
{{- end -}}

{{- define "phems-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "phems-connector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "phems-connector.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The public URL without a trailing slash; required. */}}
{{- define "phems-connector.publicUrl" -}}
{{- required "connector.publicUrl is required: the https URL other connectors reach this one at" .Values.connector.publicUrl | trimSuffix "/" -}}
{{- end -}}

{{- define "phems-connector.publicHost" -}}
{{- regexReplaceAll ":[0-9]+$" (urlParse (include "phems-connector.publicUrl" .)).host "" -}}
{{- end -}}

{{/*
did:web of the connector (did:web method spec 3.2.1): the host, a port percent-encoded as %3A,
path segments joined with ":".
*/}}
{{- define "phems-connector.did" -}}
{{- $url := urlParse (include "phems-connector.publicUrl" .) -}}
{{- $did := printf "did:web:%s" (replace ":" "%3A" $url.host) -}}
{{- range $segment := splitList "/" (trimAll "/" $url.path) -}}
{{- if $segment -}}{{- $did = printf "%s:%s" $did $segment -}}{{- end -}}
{{- end -}}
{{- $did -}}
{{- end -}}

{{/* Who the connector's pods are: more than one when replicas or the autoscaler say so. */}}
{{- define "phems-connector.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* Port of the FHIR server, from fhir.baseUrl (for the NetworkPolicy). */}}
{{- define "phems-connector.fhirPort" -}}
{{- $url := urlParse .Values.fhir.baseUrl -}}
{{- $parts := splitList ":" $url.host -}}
{{- if gt (len $parts) 1 -}}
{{- last $parts -}}
{{- else if eq $url.scheme "http" -}}
80
{{- else -}}
443
{{- end -}}
{{- end -}}

{{- define "phems-connector.databasePort" -}}
{{- if eq .Values.database.mode "bundled" -}}5432{{- else -}}{{ .Values.database.external.port }}{{- end -}}
{{- end -}}

{{/* Checks of combinations the schema cannot express; each fails with what to change. */}}
{{- define "phems-connector.validate" -}}
{{- $_ := include "phems-connector.publicUrl" . -}}
{{- if include "phems-connector.multiReplica" . -}}
{{- if not .Values.keys.existingSecret -}}
{{- fail "more than one replica needs keys.existingSecret: each replica would otherwise generate its own keys" -}}
{{- end -}}
{{- if and .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
{{- fail "more than one replica needs persistence.enabled=false (keys from keys.existingSecret, data in PostgreSQL) or persistence.accessModes [ReadWriteMany]" -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.keys.existingSecret) (not .Values.persistence.enabled) -}}
{{- fail "keys.existingSecret is empty and persistence is off: generated keys (and so the DID's keys) would be lost on every restart" -}}
{{- end -}}
{{- if eq .Values.database.mode "external" -}}
{{- if not .Values.database.external.urlSecret.name -}}
{{- if not .Values.database.external.host -}}
{{- fail "database.external.host is required (or database.external.urlSecret.name, or database.mode=bundled for a trial)" -}}
{{- end -}}
{{- if not .Values.database.external.existingSecret -}}
{{- fail "database.external.existingSecret is required: the Secret holding the PostgreSQL password" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.fhir.source "rest") (not .Values.fhir.baseUrl) -}}
{{- fail "fhir.baseUrl is required when fhir.source is rest" -}}
{{- end -}}
{{- if and (ne .Values.fhir.auth.type "none") (not .Values.fhir.auth.existingSecret) -}}
{{- fail (printf "fhir.auth.existingSecret is required for fhir.auth.type=%s" .Values.fhir.auth.type) -}}
{{- end -}}
{{- if and (eq .Values.fhir.auth.type "smart") (or (not .Values.fhir.auth.smart.clientId) (not .Values.fhir.auth.smart.tokenUrl)) -}}
{{- fail "fhir.auth.smart.clientId and fhir.auth.smart.tokenUrl are required for fhir.auth.type=smart" -}}
{{- end -}}
{{- if and .Values.fhir.caBundle.configMap .Values.fhir.caBundle.secret -}}
{{- fail "set at most one of fhir.caBundle.configMap and fhir.caBundle.secret" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" -}}
{{- end -}}
{{- if and .Values.ingress.internal.enabled (not .Values.ingress.internal.host) -}}
{{- fail "ingress.internal.host is required when the internal Ingress is enabled" -}}
{{- end -}}
{{- if and .Values.ingress.internal.enabled (eq .Values.ingress.internal.host (include "phems-connector.publicHost" .)) -}}
{{- fail "ingress.internal.host must differ from the public host: the internal Ingress must not share a host name with the public one" -}}
{{- end -}}
{{- end -}}

{{/* The restricted security context of every container in this chart. */}}
{{- define "phems-connector.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
