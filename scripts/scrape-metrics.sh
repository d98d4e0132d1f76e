#!/usr/bin/env bash
# Runs users, orders and the gateway (debug binaries) on spare loopback ports with a
# throwaway data folder, sends a few requests through the gateway, scrapes each admin
# port's /metrics and checks every scrape with `promtool check metrics`.
#
#   scripts/scrape-metrics.sh        (builds the binaries first if they are missing)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
CARGO=${CARGO:-cargo}
# shellcheck source=scripts/lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"

[[ -x $BIN/users && -x $BIN/orders && -x $BIN/gateway ]] ||
    "$CARGO" build -q --bins -p users -p orders -p gateway

start users USERS__GRPC__ADDR=127.0.0.1:55051 USERS__ADMIN__ADDR=127.0.0.1:59101 \
    USERS__PASSWORD__MEMORY_KIB=1024 USERS__PASSWORD__ITERATIONS=1 "$BIN/users"
start orders ORDERS__GRPC__ADDR=127.0.0.1:55052 ORDERS__ADMIN__ADDR=127.0.0.1:59102 \
    ORDERS__USERS__URL=http://127.0.0.1:55051 "$BIN/orders"
start gateway GATEWAY__HTTP__ADDR=127.0.0.1:58080 GATEWAY__ADMIN__ADDR=127.0.0.1:59100 \
    GATEWAY__USERS__URL=http://127.0.0.1:55051 GATEWAY__ORDERS__URL=http://127.0.0.1:55052 "$BIN/gateway"

# Traffic through every component (and a few failures, so error series exist too).
python3 - <<'PY'
import json, time, urllib.request, urllib.error

def call(method, path, body=None, token=None, port=58080):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}

deadline = time.time() + 90
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:59100/readyz", timeout=5) as ready:
            if ready.status == 200:
                break
    except (urllib.error.URLError, ConnectionError):
        pass
    if time.time() > deadline:
        raise SystemExit("scrape-metrics: the gateway never became ready")
    time.sleep(0.2)

call("POST", "/v1/users", {"email": "scrape@example.com", "displayName": "Scrape", "password": "correct horse battery"})
_, token = call("POST", "/v1/auth/token", {"email": "scrape@example.com", "password": "correct horse battery"})
token = token["accessToken"]
assert call("POST", "/v1/orders", {"items": [{"sku": "A", "quantity": 1, "unitPriceCents": "5"}]}, token)[0] == 200
assert call("GET", "/v1/orders", token=token)[0] == 200
assert call("GET", "/v1/orders")[0] == 401
assert call("GET", "/v2/nothing")[0] == 404
PY

# shellcheck source=scripts/check-deploy.sh
source "$ROOT/scripts/check-deploy.sh"
status=0
for component in gateway:59100 users:59101 orders:59102; do
    name=${component%%:*}
    python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:${component#*:}/metrics', timeout=10).read().decode())" \
        >"$work/$name.prom"
    echo "scrape-metrics: $name: $(grep -vc '^#' "$work/$name.prom") samples"
    if ! check_metrics "$work/$name.prom"; then
        echo "scrape-metrics: $name: promtool check metrics failed" >&2
        status=1
    fi
done
exit "$status"
