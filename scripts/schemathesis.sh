#!/usr/bin/env bash
# `make fuzz-api`: schemathesis against the whole system running locally. Starts users,
# orders and the gateway (debug binaries, rebuilt when stale) on spare loopback ports
# with a throwaway data folder, signs a user up and in, and runs schemathesis over the
# gateway's /openapi.json with that user's bearer token. Checks on every response:
#
#   not_a_server_error           no 5xx, ever
#   accepted_unless_unknowable   a request the schema calls valid is not refused
#                                (positive_data_acceptance, less the two refusals no
#                                schema can foresee: see scripts/schemathesis-hooks.py)
#   response_schema_conformance  the answer is what the document says it is
#   status_code_conformance, content_type_conformance
#
# `GET /v1/orders:watch` is left out: schemathesis reads an answer whole, and a watch
# is a stream that lasts as long as its client stays (with `Request-Timeout: 1`, one
# with nothing to send was still open after 20 s).
#
# Exit status: schemathesis's (0: no failure). The last lines are its summary.
#
#   scripts/schemathesis.sh [EXTRA ST ARGUMENTS...]
#
# FUZZ_MAX_EXAMPLES (default 100) bounds the test cases per operation and phase,
# FUZZ_SEED fixes the randomness (default: a new seed, printed, to rerun with),
# FUZZ_PORT (default 58180) is the gateway's port; the services take the next ones.
# Reports (JUnit XML, and a pytest file reproducing any failure) and the services'
# logs of the last run go to target/schemathesis/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
CARGO=${CARGO:-cargo}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
SEED=${FUZZ_SEED:-$RANDOM$RANDOM}
PORT=${FUZZ_PORT:-58180}
REPORTS=$ROOT/target/schemathesis
work=$(mktemp -d)
pids=()
# Whether the system answered: past that, a failure is schemathesis's to report.
up=0

cleanup() {
    local rc=$? pid log
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for log in "$work"/*.log; do
        [[ -e $log ]] || continue
        if ((rc != 0 && !up)); then
            echo "--- last lines of $(basename "$log")" >&2
            tail -n 15 "$log" >&2 || true
        fi
        mkdir -p "$REPORTS" && cp "$log" "$REPORTS/"
    done
    rm -rf "$work"
}
trap cleanup EXIT

bash "$ROOT/scripts/ensure-tools.sh" schemathesis
"$CARGO" build -q --bins -p users -p orders -p gateway

users_port=$((PORT + 1))
orders_port=$((PORT + 2))
start() {
    local name=$1
    shift
    (cd "$work" && exec env "$@" "$BIN/$name") >"$work/$name.log" 2>&1 &
    pids+=($!)
}

# Cheap password hashing and a long token lifetime: the run makes many sign-ups and
# lasts minutes. No rate limit to speak of: a fuzzer is the script it is there to stop.
start users USERS__GRPC__ADDR="127.0.0.1:$users_port" USERS__ADMIN__ADDR=127.0.0.1:0 \
    USERS__PASSWORD__MEMORY_KIB=1024 USERS__PASSWORD__ITERATIONS=1 \
    USERS__AUTH__TOKEN_TTL_SECS=3600 USERS__LOG__FORMAT=json
start orders ORDERS__GRPC__ADDR="127.0.0.1:$orders_port" ORDERS__ADMIN__ADDR=127.0.0.1:0 \
    ORDERS__USERS__URL="http://127.0.0.1:$users_port" ORDERS__LOG__FORMAT=json
start gateway GATEWAY__HTTP__ADDR="127.0.0.1:$PORT" GATEWAY__ADMIN__ADDR=127.0.0.1:0 \
    GATEWAY__USERS__URL="http://127.0.0.1:$users_port" \
    GATEWAY__ORDERS__URL="http://127.0.0.1:$orders_port" \
    GATEWAY__RATE_LIMIT__PER_SECOND=100000 GATEWAY__RATE_LIMIT__BURST=100000 \
    GATEWAY__LOG__FORMAT=json

# Ready when a sign-up goes through (the gateway, users and its database all up);
# then the account's id and a token for the run.
read -r own_id token < <(
    PORT=$PORT python3 - <<'PY'
import json, os, time, urllib.error, urllib.request

base = f"http://127.0.0.1:{os.environ['PORT']}"
account = {"email": "fuzz@example.com", "displayName": "Fuzz", "password": "correct horse battery"}

def post(path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())

deadline = time.time() + 120
while True:
    try:
        user = post("/v1/users", account)
        break
    except (urllib.error.URLError, ConnectionError) as error:
        if time.time() > deadline:
            raise SystemExit(f"schemathesis: the system never answered a sign-up: {error}")
        time.sleep(0.3)
token = post("/v1/auth/token", {"email": account["email"], "password": account["password"]})
print(user["id"], token["accessToken"])
PY
)
[[ -n ${token:-} ]] || { echo "schemathesis: no token for the run" >&2; exit 1; }

up=1
mkdir -p "$REPORTS"
echo "schemathesis: seed $SEED, at most $MAX_EXAMPLES cases per operation and phase" >&2
cd "$work"
FUZZ_OWN_USER_ID=$own_id SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis-hooks.py" \
    "$ROOT/target/tools/bin/st" run \
    "http://127.0.0.1:$PORT/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,accepted_unless_unknowable,response_schema_conformance,status_code_conformance,content_type_conformance \
    --exclude-path '/v1/orders:watch' \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 15 \
    --no-color \
    --report junit,pytest \
    --report-dir "$REPORTS" \
    "$@"
