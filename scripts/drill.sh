#!/usr/bin/env bash
# The availability alert proven against the running system: users (with fault
# injection on), orders and the gateway on spare loopback ports, a real Prometheus
# scraping their admin ports every second with the repository's rules, and loadgen
# sending user journeys. Then it injects errors into one users method (PUT /faults)
# and watches Prometheus' HTTP API: SLOAvailabilityFastBurn for users must go pending,
# then firing, keep firing while the fault lasts, and resolve once it is removed.
# Prints the times and the error ratios; exits 1 when a step does not happen in time or
# the alert is active before the fault.
#
#   scripts/drill.sh            (make drill; builds the binaries if missing)
#
# The rules' windows (5m ... 3d) and `for:` durations are divided by DRILL_FACTOR
# (scripts/drill-rules.py; names and expressions unchanged): at 60, 1h is 60s, 5m is
# 5s and `for: 2m` is 2s, so one drill second stands for one production minute.
# Settings (environment):
#   DRILL_FACTOR=60          time compression of the rules (the shortest window, 5m, must
#                            stay several scrapes long: at most 100 with 1 s scrapes)
#   DRILL_METHOD=users.v1.UserService/CreateToken   the method the fault hits (sign-in)
#   DRILL_ERROR_CODE=UNAVAILABLE  DRILL_ERROR_RATE=0.5
#   DRILL_RATE=2             loadgen journeys per second
#   DRILL_BASELINE_SECS=10   healthy traffic watched, with no alert allowed, before the fault
#   DRILL_FAULT_SECS=20      the fault lasts at least this long; the alert must keep firing
#   DRILL_TIMEOUT_SECS=120   bound of each wait (firing, resolved)
#   DRILL_KEEP=1             keep the work folder (logs, rules, TSDB) and print its path
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
CARGO=${CARGO:-cargo}
export DRILL_FACTOR=${DRILL_FACTOR:-60}
export DRILL_METHOD=${DRILL_METHOD:-users.v1.UserService/CreateToken}
export DRILL_ERROR_CODE=${DRILL_ERROR_CODE:-UNAVAILABLE}
export DRILL_ERROR_RATE=${DRILL_ERROR_RATE:-0.5}
export DRILL_RATE=${DRILL_RATE:-2}
export DRILL_BASELINE_SECS=${DRILL_BASELINE_SECS:-10}
export DRILL_FAULT_SECS=${DRILL_FAULT_SECS:-20}
export DRILL_TIMEOUT_SECS=${DRILL_TIMEOUT_SECS:-120}

say() { echo "drill: $*" >&2; }

KEEP_WORK=${DRILL_KEEP:-0}
# shellcheck source=scripts/lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"

started=$SECONDS
"$CARGO" build -q --bins -p users -p orders -p gateway -p loadgen
bash scripts/ensure-tools.sh promtool prometheus >/dev/null
TOOLS_BIN=$ROOT/target/tools/bin

# The repository's rules, time-compressed, checked by promtool before use.
python3 scripts/drill-rules.py "$DRILL_FACTOR" "$work/rules"
"$TOOLS_BIN/promtool" check rules "$work"/rules/*.yml >/dev/null

# Seven spare loopback ports (bound and released: free unless taken in between).
read -r USERS_GRPC USERS_ADMIN ORDERS_GRPC ORDERS_ADMIN GATEWAY_HTTP GATEWAY_ADMIN PROM < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
export USERS_ADMIN ORDERS_ADMIN GATEWAY_HTTP GATEWAY_ADMIN PROM DRILL_WORK=$work

# Scrapes and evaluations every second: the compressed windows hold several samples.
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules/*.yml
scrape_configs:
  - job_name: users
    static_configs: [{targets: ["127.0.0.1:$USERS_ADMIN"]}]
  - job_name: orders
    static_configs: [{targets: ["127.0.0.1:$ORDERS_ADMIN"]}]
  - job_name: gateway
    static_configs: [{targets: ["127.0.0.1:$GATEWAY_ADMIN"]}]
EOF
"$TOOLS_BIN/promtool" check config "$work/prometheus.yml" >/dev/null

# Cheap password hashing and a raised rate limit: the drill measures errors, and must
# not be slowed by the hasher or turned away by the limit on two cores and one address.
start users USERS__GRPC__ADDR=127.0.0.1:$USERS_GRPC USERS__ADMIN__ADDR=127.0.0.1:$USERS_ADMIN \
    USERS__PASSWORD__MEMORY_KIB=1024 USERS__PASSWORD__ITERATIONS=1 USERS__FAULTS__ENABLED=true \
    USERS__LOG__FORMAT=json "$BIN/users"
start orders ORDERS__GRPC__ADDR=127.0.0.1:$ORDERS_GRPC ORDERS__ADMIN__ADDR=127.0.0.1:$ORDERS_ADMIN \
    ORDERS__USERS__URL=http://127.0.0.1:$USERS_GRPC ORDERS__LOG__FORMAT=json "$BIN/orders"
start gateway GATEWAY__HTTP__ADDR=127.0.0.1:$GATEWAY_HTTP GATEWAY__ADMIN__ADDR=127.0.0.1:$GATEWAY_ADMIN \
    GATEWAY__USERS__URL=http://127.0.0.1:$USERS_GRPC GATEWAY__ORDERS__URL=http://127.0.0.1:$ORDERS_GRPC \
    GATEWAY__RATE_LIMIT__PER_SECOND=100000 GATEWAY__RATE_LIMIT__BURST=100000 \
    GATEWAY__LOG__FORMAT=json "$BIN/gateway"
start prometheus "$TOOLS_BIN/prometheus" --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/tsdb" --web.listen-address=127.0.0.1:$PROM --log.level=warn
say "users, orders, gateway and $("$TOOLS_BIN/prometheus" --version 2>&1 | head -n 1 | cut -d' ' -f1-3) started; rules every duration / $DRILL_FACTOR"

# Load runs for the whole drill; the observer stops it (SIGTERM) to read its summary.
start loadgen "$BIN/loadgen" --url "http://127.0.0.1:$GATEWAY_HTTP" --rate "$DRILL_RATE" \
    --duration 1h --max-error-ratio 1 --quiet --json "$work/loadgen.json"
export LOADGEN_PID=${pids[-1]}

python3 - <<'PY'
import json, os, signal, sys, time, urllib.error, urllib.parse, urllib.request

env = os.environ
FACTOR = float(env["DRILL_FACTOR"])
PROM = f"http://127.0.0.1:{env['PROM']}"
USERS_ADMIN = f"http://127.0.0.1:{env['USERS_ADMIN']}"
ALERT = "SLOAvailabilityFastBurn"
JOB = "users"
TIMEOUT = float(env["DRILL_TIMEOUT_SECS"])


def say(text):
    print(f"drill: {text}", file=sys.stderr, flush=True)


def fail(text):
    say(f"FAILED: {text}")
    sys.exit(1)


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, method=method, data=data)
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def api(path, **params):
    url = f"{PROM}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    _, body = http("GET", url)
    return json.loads(body)["data"]


def wait_for(what, check, timeout=TIMEOUT, every=0.25):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def active_alerts():
    """Every pending or firing alert: {(alertname, job): (state, activeAt)}."""
    return {
        (a["labels"]["alertname"], a["labels"].get("job", "")): (a["state"], a.get("activeAt"))
        for a in api("alerts")["alerts"]
    }


def value(query):
    result = api("query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def ratio_line():
    parts = []
    for job in ("users", "gateway"):
        short = value(f'job:slo_availability_error_ratio:rate5m{{job="{job}"}}')
        long = value(f'job:slo_availability_error_ratio:rate1h{{job="{job}"}}')
        if short is not None:
            parts.append(f"{job} {100 * short:.1f} % ({5 * 60 / FACTOR:g} s window), "
                         f"{100 * (long or 0):.1f} % ({3600 / FACTOR:g} s window)")
    return "; ".join(parts)


def rfc3339(text):
    # Prometheus writes nanoseconds; keep microseconds for fromisoformat.
    from datetime import datetime
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


wait_for("Prometheus ready", lambda: http("GET", f"{PROM}/-/ready")[0] == 200, timeout=60)
wait_for("all three targets up", lambda: all(
    t["health"] == "up" for t in api("targets")["activeTargets"]) and len(api("targets")["activeTargets"]) == 3,
    timeout=90)
say("targets users, orders, gateway up; waiting for loadgen's traffic in the SLI")
wait_for("traffic in job:slo_availability_error_ratio:rate5m{job=\"users\"}",
         lambda: value('job:slo_availability_error_ratio:rate5m{job="users"}') is not None, timeout=90)

# Healthy traffic first: the alert under test must stay quiet without a fault. Others
# are reported, not failed on: a machine busy enough to slow calls past 500 ms may
# rightly raise a latency alert.
baseline_end = time.monotonic() + float(env["DRILL_BASELINE_SECS"])
others = set()
while time.monotonic() < baseline_end:
    active = active_alerts()
    if any(name == ALERT for name, _ in active):
        fail(f"{ALERT} active before any fault: {sorted(active)}")
    others |= set(active)
    time.sleep(0.5)
say(f"baseline: {env['DRILL_BASELINE_SECS']} s of traffic, no {ALERT}; error ratio {ratio_line()}")
if others:
    say(f"note: other alerts active before the fault: {sorted(others)}")

rule = {"method": env["DRILL_METHOD"], "error_code": env["DRILL_ERROR_CODE"],
        "error_rate": float(env["DRILL_ERROR_RATE"])}
http("PUT", f"{USERS_ADMIN}/faults", {"rules": [rule]})
fault_on = time.time()
say(f"fault on: {float(env['DRILL_ERROR_RATE']) * 100:g} % {env['DRILL_ERROR_CODE']} on {env['DRILL_METHOD']}")

seen = {}  # (alertname, job) -> first state seen, for the summary


def watch():
    active = active_alerts()
    for key, (state, _) in active.items():
        seen.setdefault(key, {}).setdefault(state, time.time() - fault_on)
    return active


alert = wait_for(f"{ALERT}{{job=\"{JOB}\"}} pending or firing", lambda: watch().get((ALERT, JOB)))
pending_after = rfc3339(alert[1]) - fault_on
say(f"{ALERT}{{job=\"{JOB}\"}} {alert[0]}: active since {pending_after:.1f} s after the fault")
wait_for(f"{ALERT}{{job=\"{JOB}\"}} firing", lambda: (watch().get((ALERT, JOB)) or ("",))[0] == "firing")
firing_after = time.time() - fault_on
say(f"{ALERT}{{job=\"{JOB}\"}} firing {firing_after:.1f} s after the fault")

# The fault stays on for a while longer: the alert must keep firing (no flapping), and
# the short window's ratio settles on the fault's steady share.
hold_end = fault_on + max(float(env["DRILL_FAULT_SECS"]), firing_after)
while time.time() < hold_end:
    state = watch().get((ALERT, JOB))
    if not state or state[0] != "firing":
        fail(f"{ALERT}{{job=\"{JOB}\"}} stopped firing while the fault was still on")
    time.sleep(0.5)
ratios = ratio_line()
say(f"still firing {time.time() - fault_on:.1f} s after the fault; error ratio {ratios}")

http("PUT", f"{USERS_ADMIN}/faults", {"rules": []})
fault_off = time.time()
say("fault off")
wait_for(f"{ALERT}{{job=\"{JOB}\"}} resolved", lambda: (ALERT, JOB) not in watch())
resolved_after = time.time() - fault_off
say(f"{ALERT}{{job=\"{JOB}\"}} resolved {resolved_after:.1f} s after the fault was removed")

# The load's own view, and the faults the service counted.
os.kill(int(env["LOADGEN_PID"]), signal.SIGTERM)
summary_path = os.path.join(env["DRILL_WORK"], "loadgen.json")
summary = wait_for("loadgen's summary", lambda: json.load(open(summary_path)), timeout=30)
_, scrape = http("GET", f"{USERS_ADMIN}/metrics")
injected = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.decode().splitlines()
               if line.startswith("faults_injected_total{"))

scale = lambda s: f"{s:.1f} s (= {s * FACTOR / 60:.1f} min at production scale)"
seen_lines = "\n".join(
    f"    {name}{{job=\"{job}\"}}".ljust(46) + ", ".join(f"{state} +{t:.0f} s" for state, t in states.items())
    for (name, job), states in sorted(seen.items()))
print(f"""
drill: {ALERT}{{job="{JOB}"}}, every rule duration divided by {FACTOR:g}
  fault               {float(env['DRILL_ERROR_RATE']) * 100:g} % {env['DRILL_ERROR_CODE']} on {env['DRILL_METHOD']} ({injected:.0f} injected)
  pending after       {scale(pending_after)}
  firing after        {scale(firing_after)}
  fault lasted        {fault_off - fault_on:.1f} s, the alert firing throughout once it fired
  resolved after      {scale(resolved_after)}, counted from the fault's removal
  error ratio         {ratios} (at the fault's end)
  loadgen             {summary['requests']['total']} requests, {summary['requests']['per_second']:.1f}/s, error ratio {100 * summary['error_ratio']:.1f} %
  alerts seen (seconds after the fault):
{seen_lines}
""")
PY
say "passed in $((SECONDS - started)) s"
