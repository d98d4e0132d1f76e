{{/*
What the chart knows about each service and values cannot change: ports, the
environment prefix, the gRPC health service name.
*/}}
{{- define "platform.facts" -}}
{{- if eq . "users" -}}
prefix: USERS
kind: grpc
port: 50051
portName: grpc
adminPort: 9101
healthService: users.v1.UserService
database: true
{{- else if eq . "orders" -}}
prefix: ORDERS
kind: grpc
port: 50052
portName: grpc
adminPort: 9102
healthService: orders.v1.OrderService
database: true
{{- else if eq . "gateway" -}}
prefix: GATEWAY
kind: http
port: 8080
portName: http
adminPort: 9100
healthService: ""
database: false
{{- else -}}
{{- fail (printf "unknown service %q" .) -}}
{{- end -}}
{{- end -}}

{{/* The services, in dependency order. */}}
{{- define "platform.services" -}}
users orders gateway
{{- end -}}

{{/* Labels selecting a service's pods: the same in every release. */}}
{{- define "platform.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: platform
{{- end -}}

{{/* Labels of every object of a service. Takes (dict "name" NAME "root" $). */}}
{{- define "platform.labels" -}}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ get (dict "gateway" "edge" "loadgen" "load-generator" "nats" "event-broker") .name | default "grpc-service" }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of the objects shared by the services (rules, dashboard). Takes $. */}}
{{- define "platform.sharedLabels" -}}
app.kubernetes.io/part-of: platform
app.kubernetes.io/component: monitoring
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image reference of a service. Takes (dict "name" NAME "root" $). */}}
{{- define "platform.image" -}}
{{- $svc := index .root.Values .name -}}
{{- $g := .root.Values.global.image -}}
{{- $repo := $svc.image.repository | default (printf "%s/%s" $g.registry .name) -}}
{{- $tag := $svc.image.tag | default $g.tag | default .root.Chart.AppVersion -}}
{{- if $svc.image.digest -}}
{{ $repo }}@{{ $svc.image.digest }}
{{- else -}}
{{ $repo }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* The Secret holding a service's database URL. */}}
{{- define "platform.databaseSecret" -}}
{{- $svc := index .root.Values .name -}}
{{- if $svc.database.url -}}
{{ .name }}-database-generated
{{- else -}}
{{ $svc.database.existingSecret }}
{{- end -}}
{{- end -}}

{{/* The pod securityContext; a service's podSecurityContext is merged over it. */}}
{{- define "platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container securityContext shared by every container. */}}
{{- define "platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The environment of a service (ConfigMap data). Takes (dict "name" NAME "root" $).
Only keys the binaries know: an unknown USERS__/ORDERS__/GATEWAY__ key stops them.
*/}}
{{- define "platform.env" -}}
{{- $name := .name -}}
{{- $root := .root -}}
{{- $svc := index $root.Values $name -}}
{{- $f := include "platform.facts" $name | fromYaml -}}
{{- $g := $root.Values.global -}}
{{- $p := $f.prefix -}}
{{- if eq $f.kind "grpc" }}
{{ $p }}__GRPC__ADDR: "0.0.0.0:{{ $f.port }}"
{{ $p }}__GRPC__GRACE_PERIOD_MS: {{ mul $svc.shutdown.drainSeconds 1000 | quote }}
{{- else }}
{{ $p }}__HTTP__ADDR: "0.0.0.0:{{ $f.port }}"
{{ $p }}__HTTP__GRACE_PERIOD_MS: {{ mul $svc.shutdown.drainSeconds 1000 | quote }}
{{- end }}
{{ $p }}__ADMIN__ADDR: "0.0.0.0:{{ $f.adminPort }}"
{{ $p }}__LOG__FORMAT: {{ $g.log.format | quote }}
{{- with $g.log.filter }}
{{ $p }}__LOG__FILTER: {{ . | quote }}
{{- end }}
{{- with include "platform.natsUrl" $root }}
{{- if ne $name "gateway" }}
{{ $p }}__EVENTS__NATS_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $f.database }}
{{ $p }}__DATABASE__RUN_MIGRATIONS: {{ ternary "false" "true" $svc.migrations.enabled | quote }}
{{ $p }}__DATABASE__MAX_CONNECTIONS: {{ $svc.database.maxConnections | quote }}
{{- end }}
{{- if eq $name "users" }}
USERS__AUTH__SIGNING_KEY_FILE: "/var/run/secrets/users/signing-key.pem"
USERS__AUTH__GENERATE_SIGNING_KEY: {{ $svc.signingKey.generate | toString | quote }}
{{- with $svc.signingKey.retired }}
{{- $files := list }}
{{- range . }}
{{- $files = append $files (printf "/var/run/secrets/users/%s" .) }}
{{- end }}
USERS__AUTH__RETIRED_KEY_FILES: {{ join "," $files | quote }}
{{- end }}
USERS__PASSWORD__MAX_CONCURRENT: {{ $svc.passwordMaxConcurrent | quote }}
{{- end }}
{{- if eq $name "orders" }}
ORDERS__USERS__URL: {{ $svc.usersUrl | default "http://users:50051" | quote }}
{{- end }}
{{- if eq $name "gateway" }}
GATEWAY__USERS__URL: {{ $svc.usersUrl | default "http://users:50051" | quote }}
GATEWAY__ORDERS__URL: {{ $svc.ordersUrl | default "http://orders:50052" | quote }}
GATEWAY__RATE_LIMIT__PER_SECOND: {{ $svc.rateLimit.perSecond | quote }}
GATEWAY__RATE_LIMIT__BURST: {{ $svc.rateLimit.burst | quote }}
GATEWAY__RATE_LIMIT__REDIS_URL: {{ $svc.rateLimit.redisUrl | quote }}
GATEWAY__RATE_LIMIT__REDIS_TIMEOUT_MS: {{ $svc.rateLimit.redisTimeoutMs | quote }}
GATEWAY__RATE_LIMIT__FAIL_OPEN: {{ $svc.rateLimit.failOpen | toString | quote }}
{{- with $svc.rateLimit.trustedProxies }}
GATEWAY__RATE_LIMIT__TRUSTED_PROXIES: {{ join "," . | quote }}
{{- end }}
GATEWAY__RATE_LIMIT__FORWARDED_HOPS: {{ $svc.rateLimit.forwardedHops | quote }}
{{- end }}
OTEL_SERVICE_NAME: {{ $name | quote }}
{{- with $g.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
OTEL_TRACES_SAMPLER: {{ $g.otel.sampler | quote }}
{{- with $g.otel.samplerArg }}
OTEL_TRACES_SAMPLER_ARG: {{ . | quote }}
{{- end }}
DEPLOYMENT_ENVIRONMENT: {{ $g.environment | quote }}
{{- range $k, $v := $svc.env }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* The events broker users and orders connect to; empty for none. Takes $. */}}
{{- define "platform.natsUrl" -}}
{{- if .Values.nats.url -}}
{{ .Values.nats.url }}
{{- else if .Values.nats.enabled -}}
nats://nats:4222
{{- end -}}
{{- end -}}

{{/* OTEL_RESOURCE_ATTRIBUTES: fixed ones, the pod's, then global.otel.resourceAttributes. */}}
{{- define "platform.resourceAttributes" -}}
{{- $attrs := list "service.namespace=platform" "deployment.environment.name=$(DEPLOYMENT_ENVIRONMENT)" "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" -}}
{{- range $k, $v := .Values.global.otel.resourceAttributes -}}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{ join "," $attrs }}
{{- end -}}
