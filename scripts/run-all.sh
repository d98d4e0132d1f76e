#!/usr/bin/env bash
# Builds and runs every service on its embedded defaults, in the foreground.
# Ctrl-C (SIGINT) or SIGTERM is passed on to each service, which shuts down
# gracefully; if one service exits by itself, the others are stopped too.
#
#   scripts/run-all.sh             all services
#   scripts/run-all.sh users       only the ones named
#
# A new service is one more word in SERVICES (its binary's name, in start order).
set -euo pipefail

SERVICES=(users orders gateway)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

if (($#)); then
    SERVICES=("$@")
fi

packages=()
for service in "${SERVICES[@]}"; do
    packages+=(-p "$service")
done
"$CARGO" build --bins "${packages[@]}"

pids=()
names=()

stop_all() {
    local signal=$1 pid
    for pid in "${pids[@]}"; do
        kill "-$signal" "$pid" 2>/dev/null || true
    done
}

stopping=0
# shellcheck disable=SC2317 # called from the traps below
on_signal() {
    echo "run-all: SIG$1: stopping ${names[*]}" >&2
    stopping=1
    stop_all "$1"
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

for service in "${SERVICES[@]}"; do
    "$BIN_DIR/$service" &
    pids+=($!)
    names+=("${service}[$!]")
    echo "run-all: started $service (pid $!)" >&2
done

# Wait for the first to exit (a trapped signal also ends the wait: go round again),
# then stop the rest and wait for them all.
status=0
while :; do
    wait -n "${pids[@]}" && status=0 || status=$?
    # A trapped signal ends the wait too (status 128+n) while every child still runs.
    alive=0
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then alive=$((alive + 1)); fi
    done
    ((alive == ${#pids[@]})) || break
done
if ((alive > 0 && !stopping)); then
    echo "run-all: a service exited (status $status): stopping the others" >&2
    stop_all TERM
fi
for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
done
exit "$status"
