{{/*
payments-api.name is the chart name, or nameOverride.
*/}}
{{- define "payments-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
payments-api.fullname is the default fully qualified app name, truncated at 63
characters because some Kubernetes name fields are limited to that (DNS naming
spec). When the release name contains the chart name it is used as the full name.
*/}}
{{- define "payments-api.fullname" -}}
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

{{/*
payments-api.chart is the chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "payments-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
payments-api.labels are the common labels of every resource.
*/}}
{{- define "payments-api.labels" -}}
helm.sh/chart: {{ include "payments-api.chart" . }}
{{ include "payments-api.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
payments-api.selectorLabels are the labels that identify the release's app.
*/}}
{{- define "payments-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "payments-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
payments-api.podSelectorLabels select the API pods only: the helm test pod shares
the release's labels but must never become an endpoint of the Service.
*/}}
{{- define "payments-api.podSelectorLabels" -}}
{{ include "payments-api.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{/*
payments-api.serviceAccountName is the ServiceAccount the pods run as.
*/}}
{{- define "payments-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "payments-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
payments-api.image is the image reference; the tag defaults to the chart's
appVersion so that a chart release pins an app release (never `latest`).
*/}}
{{- define "payments-api.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
payments-api.secretName is the Secret holding the secret variables.
*/}}
{{- define "payments-api.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "payments-api.fullname" . }}
{{- end }}
{{- end }}

{{/*
payments-api.secretKey is the key of a secret variable in the Secret the pods
read: the variable's own name in the chart's Secret, or the key named in
existingSecretKeys. Called with (list $ "databaseUrl" "DATABASE_URL").
*/}}
{{- define "payments-api.secretKey" -}}
{{- $root := index . 0 }}
{{- if $root.Values.existingSecret }}
{{- get $root.Values.existingSecretKeys (index . 1) }}
{{- else }}
{{- index . 2 }}
{{- end }}
{{- end }}

{{/*
payments-api.secretEnv is one env entry taken from the Secret the pods read.
Called with (list $ "databaseUrl" "DATABASE_URL").
*/}}
{{- define "payments-api.secretEnv" -}}
- name: {{ index . 2 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "payments-api.secretName" (index . 0) }}
      key: {{ include "payments-api.secretKey" . }}
{{- end }}

{{/*
payments-api.database is "true" when a database is configured (durable
delivery): database.url, or a DATABASE_URL key in existingSecret.
*/}}
{{- define "payments-api.database" -}}
{{- if or .Values.database.url (and .Values.existingSecret .Values.existingSecretKeys.databaseUrl) }}true{{ end }}
{{- end }}

{{/*
payments-api.redis is "true" when Redis is configured (shared rate limits).
*/}}
{{- define "payments-api.redis" -}}
{{- if or .Values.redis.url (and .Values.existingSecret .Values.existingSecretKeys.redisUrl) }}true{{ end }}
{{- end }}

{{/*
payments-api.migrationName names the migration Job and its hook Secret and
NetworkPolicy; a Job's name becomes a label value, hence the 63 characters.
*/}}
{{- define "payments-api.migrationName" -}}
{{- printf "%s-migrate" (include "payments-api.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
payments-api.migrationSecretName is the Secret the migration Job reads
DATABASE_URL from: existingSecret, else the hook Secret, because the
release's own Secret does not exist yet when a pre-install hook runs.
*/}}
{{- define "payments-api.migrationSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "payments-api.migrationName" . }}
{{- end }}
{{- end }}

{{/*
payments-api.migrationServiceAccountName is the ServiceAccount of the
migration Job. A ServiceAccount the chart creates does not exist yet when a
pre-install hook runs, so the Job then uses the namespace's "default" (it
needs no API access, and gets no token); one you manage is used as is.
*/}}
{{- define "payments-api.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- "default" }}
{{- else }}
{{- include "payments-api.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/*
payments-api.otlpPort is the collector port the NetworkPolicy opens: the
explicit one, the endpoint's, or the protocol's default.
*/}}
{{- define "payments-api.otlpPort" -}}
{{- $explicit := .Values.networkPolicy.otlpPort }}
{{- $fromUrl := regexFind ":[0-9]+$" (urlParse .Values.tracing.otlpEndpoint).host | trimPrefix ":" }}
{{- if not (kindIs "invalid" $explicit) }}
{{- $explicit }}
{{- else if $fromUrl }}
{{- $fromUrl }}
{{- else if eq .Values.tracing.otlpProtocol "grpc" }}
{{- 4317 }}
{{- else }}
{{- 4318 }}
{{- end }}
{{- end }}

{{/*
payments-api.ruleSelector is the PromQL label matchers of this release's
series in the alert rules: the ServiceMonitor's namespace and job labels,
unless metrics.prometheusRule.selector says otherwise.
*/}}
{{- define "payments-api.ruleSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "namespace=%q,job=%q" .Release.Namespace (include "payments-api.fullname" .)) }}
{{- end }}

{{/*
payments-api.nextjsWebhookUrl is NEXTJS_WEBHOOK_URL: the explicit URL, else the
frontend's in-cluster Service URL.
*/}}
{{- define "payments-api.nextjsWebhookUrl" -}}
{{- if .Values.nextjs.webhookUrl }}
{{- .Values.nextjs.webhookUrl }}
{{- else }}
{{- $ns := .Values.nextjs.namespace | default .Release.Namespace }}
{{- printf "http://%s.%s.svc.cluster.local:%d%s" .Values.nextjs.serviceName $ns (int .Values.nextjs.port) .Values.nextjs.webhookPath }}
{{- end }}
{{- end }}

{{/*
payments-api.seconds turns a duration of the form accepted by the schema
(e.g. 1h2m3s, 20s, 0) into whole seconds.
*/}}
{{- define "payments-api.seconds" -}}
{{- $d := toString . }}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi }}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi }}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi }}
{{- add (mul $h 3600) (mul $m 60) $s }}
{{- end }}

{{/*
payments-api.terminationGracePeriodSeconds outlasts the shutdown: the delay
during which /readyz answers 503, then the time in-flight requests get. A value
that would cut the shutdown short fails the install.
*/}}
{{- define "payments-api.terminationGracePeriodSeconds" -}}
{{- $need := add (include "payments-api.seconds" .Values.shutdown.delay | atoi) (include "payments-api.seconds" .Values.shutdown.timeout | atoi) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $need 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdown.delay + shutdown.timeout (%d s), or pods are killed mid-shutdown" (int .Values.terminationGracePeriodSeconds) (int $need)) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
payments-api.validate fails on missing or conflicting values that the schema
cannot express; every template includes it through the ConfigMap.
*/}}
{{- define "payments-api.validate" -}}
{{- $errs := list }}
{{- if not .Values.clerk.issuer }}
{{- $errs = append $errs "clerk.issuer is required (the Clerk Frontend API URL, e.g. https://clerk.example.com)" }}
{{- end }}
{{- if not .Values.stripe.priceIds }}
{{- $errs = append $errs "stripe.priceIds needs at least one price ID" }}
{{- end }}
{{- $given := dict "stripe.secretKey" .Values.stripe.secretKey "stripe.webhookSecret" .Values.stripe.webhookSecret "nextjs.webhookSecret" .Values.nextjs.webhookSecret "clerk.jwtKey" .Values.clerk.jwtKey }}
{{- if .Values.existingSecret }}
{{- range $k := keys $given | sortAlpha }}
{{- if get $given $k }}
{{- $errs = append $errs (printf "%s conflicts with existingSecret: put it in the existing Secret instead" $k) }}
{{- end }}
{{- end }}
{{- else }}
{{- range $k := list "stripe.secretKey" "stripe.webhookSecret" "nextjs.webhookSecret" }}
{{- if not (get $given $k) }}
{{- $errs = append $errs (printf "%s is required unless existingSecret names a Secret holding it" $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The optional secrets: each is a value, or a key of existingSecret, never both. */}}
{{- $optional := list (list "database.url" .Values.database.url "databaseUrl") (list "redis.url" .Values.redis.url "redisUrl") (list "admin.username" .Values.admin.username "adminUsername") (list "admin.password" .Values.admin.password "adminPassword") }}
{{- range $optional }}
{{- $value := index . 0 }}
{{- $key := index . 2 }}
{{- if and $.Values.existingSecret (index . 1) }}
{{- $errs = append $errs (printf "%s conflicts with existingSecret: put it in the existing Secret and name its key in existingSecretKeys.%s" $value $key) }}
{{- end }}
{{- if and (not $.Values.existingSecret) (get $.Values.existingSecretKeys $key) }}
{{- $errs = append $errs (printf "existingSecretKeys.%s needs existingSecret; without one, set %s" $key $value) }}
{{- end }}
{{- end }}
{{- if and .Values.nextjs.webhookSecret (eq .Values.nextjs.webhookSecret .Values.stripe.webhookSecret) }}
{{- $errs = append $errs "nextjs.webhookSecret must differ from stripe.webhookSecret: a leak of one must not forge the other" }}
{{- end }}
{{- if .Values.admin.enabled }}
{{- if not (include "payments-api.database" .) }}
{{- $errs = append $errs "admin.enabled needs a database (the admin UI shows the delivery queue): set database.url, or existingSecret with existingSecretKeys.databaseUrl" }}
{{- end }}
{{- if .Values.existingSecret }}
{{- if not (and .Values.existingSecretKeys.adminUsername .Values.existingSecretKeys.adminPassword) }}
{{- $errs = append $errs "admin.enabled with existingSecret needs existingSecretKeys.adminUsername and existingSecretKeys.adminPassword" }}
{{- end }}
{{- else if not (and .Values.admin.username .Values.admin.password) }}
{{- $errs = append $errs "admin.enabled needs admin.username and admin.password (basic auth of the admin UI)" }}
{{- end }}
{{- if has (int .Values.admin.port) (list 8001 9090) }}
{{- $errs = append $errs (printf "admin.port %d is already the API's or the metrics' port" (int .Values.admin.port)) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.prometheusRule.enabled (not .Values.metrics.serviceMonitor.enabled) (not .Values.metrics.prometheusRule.selector) }}
{{- $errs = append $errs "metrics.prometheusRule.enabled needs the metrics scraped: enable metrics.serviceMonitor, or set metrics.prometheusRule.selector to the labels your own scrape gives the series" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- $errs = append $errs "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- $errs = append $errs "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (gt (include "payments-api.seconds" .Values.metrics.serviceMonitor.scrapeTimeout | atoi) (include "payments-api.seconds" .Values.metrics.serviceMonitor.interval | atoi)) }}
{{- $errs = append $errs "metrics.serviceMonitor.scrapeTimeout must not exceed metrics.serviceMonitor.interval" }}
{{- end }}
{{- if $errs }}
{{- fail (printf "\n%s" (join "\n" $errs)) }}
{{- end }}
{{- end }}

{{/*
payments-api.resourceAttributes is OTEL_RESOURCE_ATTRIBUTES: key=value pairs,
sorted, each value percent-encoded as the OpenTelemetry spec asks, so that a
comma or an equals sign in a value cannot split it (a space becomes %20, not
the +, which the SDK would keep as it is).
*/}}
{{- define "payments-api.resourceAttributes" -}}
{{- $pairs := list }}
{{- range $k := keys . | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $k (get $ $k | toString | urlquery | replace "+" "%20")) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
