# shellcheck shell=bash
# Background processes of a script that runs the system on loopback: a work folder for
# their logs, `start NAME [VAR=value ...] COMMAND [ARG ...]` to run one there with its
# output in NAME.log, and an EXIT trap that stops them all (SIGTERM, then waits) and,
# when the script failed, prints the last lines of every log.
#
# Source it after `set -euo pipefail`. KEEP_WORK=1 keeps the folder and prints its path.

work=$(mktemp -d)
pids=()

start() {
    local name=$1
    shift
    (cd "$work" && exec env "$@") >"$work/$name.log" 2>&1 &
    pids+=($!)
}

stop_all() {
    local rc=$? pid log
    if ((rc != 0)); then
        for log in "$work"/*.log; do
            [[ -e $log ]] || continue
            echo "--- last lines of $(basename "$log")" >&2
            tail -n 15 "$log" >&2 || true
        done
    fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap stop_all EXIT
