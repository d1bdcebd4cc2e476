{{/* Environment from Secrets. The database URL is composed in the pod (Kubernetes expands
$(DATABASE_PASSWORD) from the variable defined before it), so the password never sits in a
ConfigMap; a password that is not URL-safe needs database.external.urlSecret instead. */}}
{{- define "phems-connector.databaseEnv" -}}
{{- if eq .Values.database.mode "bundled" }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "phems-connector.generatedSecretName" .) .Values.database.bundled.existingSecret }}
      key: {{ ternary .Values.database.bundled.passwordKey "postgres-password" (not (empty .Values.database.bundled.existingSecret)) }}
- name: PHEMS_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(DATABASE_PASSWORD)@%s:5432/%s" .Values.database.bundled.user (include "phems-connector.postgresName" .) .Values.database.bundled.name | quote }}
{{- else if .Values.database.external.urlSecret.name }}
- name: PHEMS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.external.urlSecret.name }}
      key: {{ .Values.database.external.urlSecret.key }}
{{- else }}
{{- $db := .Values.database.external }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.passwordKey }}
- name: PHEMS_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(DATABASE_PASSWORD)@%s:%d/%s%s" $db.user $db.host (int $db.port) $db.name (ternary (printf "?ssl=%s" $db.ssl) "" (not (empty $db.ssl))) | quote }}
{{- end }}
{{- end -}}

{{- define "phems-connector.secretEnv" -}}
{{ include "phems-connector.databaseEnv" . }}
- name: PHEMS_MANAGEMENT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "phems-connector.generatedSecretName" .) .Values.managementApi.existingSecret }}
      key: {{ ternary .Values.managementApi.secretKey "management-api-key" (not (empty .Values.managementApi.existingSecret)) }}
{{- if eq .Values.fhir.auth.type "bearer" }}
- name: PHEMS_FHIR_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.fhir.auth.existingSecret }}
      key: {{ .Values.fhir.auth.tokenKey }}
{{- else if eq .Values.fhir.auth.type "basic" }}
- name: PHEMS_FHIR_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.fhir.auth.existingSecret }}
      key: {{ .Values.fhir.auth.passwordKey }}
{{- end }}
{{- end -}}
