#!/usr/bin/env python3
"""`make bench`: the platform's benchmarks, in one sitting, as ratios.

Absolute figures move with whatever else the machine is doing; ratios taken in one run,
with the compared systems driven in interleaved rounds, do not move much. Each suite
prints its ratios next to their targets and writes them as JSON under target/bench/.

Suites (all by default; name some to run only those):
  grpc      the same RPC through the gateway and directly over gRPC (gateway_bench)
  edge      one tonic echo backend behind (1) a minimal hand-written axum + tonic proxy,
            (2) the gateway, exposing it from its descriptor set on an authenticated
            route with every feature on (token check, rate limit, JSON access log,
            trace context, metrics), (3) Fastify + @grpc/grpc-js
  instructions
            the hand-written proxy and the gateway of `edge` under valgrind's callgrind:
            user-space instructions per request, a count rather than a time, so the ratio
            does not move with what else the machine is doing
  orders    GET /v1/orders/{id} end to end (gateway, orders, PostgreSQL; token checked
            at the edge and in orders) against PostgreSQL's own `pgbench -S`; with
            start-to-ready, idle and peak memory of each service, and the p99 of the
            same reads while a sign-in flood runs

    python3 bench/run.py [grpc] [edge] [instructions] [orders]   # DUR=8s ROUNDS=3 CONNECTIONS=64

Needs wrk and pgbench (Debian packages wrk, postgresql-client), node and npm for the
Fastify peer, valgrind for the instruction counts, and a PostgreSQL server (PG_URL, default postgres://postgres@127.0.0.1:5432/postgres)
where it may create and drop databases named bench_*. Only 127.0.0.1 is used.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELEASE = TARGET / "release"
# The edge benchmark's echo backend and hand-written proxy, built as the kit builds them
# (`[profile.bench-peer]` in Cargo.toml).
PEERS = TARGET / "bench-peer"
OUT = TARGET / "bench"
DUR = os.environ.get("DUR", "8s")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
PG_URL = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery staple"


# --- processes ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ticks(pid: int) -> int:
    """User + system CPU ticks of a process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def postgres_ticks() -> dict[int, int]:
    """CPU ticks of each PostgreSQL process now."""
    now = {}
    for pid in postgres_pids():
        try:
            now[pid] = ticks(pid)
        except OSError:
            pass
    return now


def postgres_spent(before: dict[int, int]) -> int:
    """Ticks PostgreSQL spent since `before`: the backends there then and now (the
    service's pooled connections, and the server's own processes); others came and went."""
    after = postgres_ticks()
    return sum(after[pid] - ticks_then for pid, ticks_then in before.items() if pid in after)


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.002)
    raise TimeoutError(f"{what} within {timeout} s")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Stack:
    """Processes started for a suite; all stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, work: Path):
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}
        self.ready_ms: dict[str, float] = {}

    def start(self, name: str, argv: list[str], env: dict | None = None, admin_port: int | None = None,
              port: int | None = None, timeout: float = 30.0) -> subprocess.Popen:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.work, env=dict(os.environ, **(env or {})),
                                stdout=open(self.work / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
        self.procs[name] = proc
        try:
            if admin_port is not None:
                wait_until(lambda: ready(admin_port) or proc.poll() is not None, f"{name} ready", timeout)
            elif port is not None:
                wait_until(lambda: listening(port) or proc.poll() is not None, f"{name} listening", timeout)
        except TimeoutError:
            sys.exit(f"{name} did not start; see {self.work / (name + '.log')}")
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}; see {self.work / (name + '.log')}")
        self.ready_ms[name] = round(1000 * (time.monotonic() - started), 1)
        return proc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def stack(prefix: str):
    work = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    s = Stack(work)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


# --- load and HTTP -----------------------------------------------------------------

def wrk(url: str, pids: dict[str, int], lua: str, token: str = "", connections: int = CONNECTIONS,
        duration: str = DUR, with_postgres: bool = False) -> dict:
    """Runs wrk against `url`; CPU per request of each process in `pids` (and PostgreSQL's)."""
    before = {name: ticks(pid) for name, pid in pids.items()}
    pg_before = postgres_ticks() if with_postgres else {}
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}", "--latency", "-s",
                          str(ROOT / "bench" / "wrk" / lua), url],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, TOKEN=token)).stdout
    hz = os.sysconf("SC_CLK_TCK")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu = {name: (ticks(pid) - before[name]) / hz for name, pid in pids.items()}
    if with_postgres:
        cpu["postgres"] = postgres_spent(pg_before) / hz

    def ms(p: int) -> float:
        m = re.search(rf"\s{p}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms(50),
              "p99_ms": ms(99), "requests": requests, "non_2xx": int(bad.group(1)) if bad else 0,
              "socket_errors": sum(map(int, errors.groups())) if errors else 0}
    for name, seconds in cpu.items():
        result[f"{name}_cpu_us_per_request"] = round(seconds * 1e6 / max(requests, 1), 1)
    return result


def median(runs: list[dict]) -> dict:
    return {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}


def http_json(method: str, url: str, body: dict | None = None, token: str = "") -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {url}: {e.code} {e.read()[:300]!r}")


def sign_in(gateway: str, email: str) -> str:
    http_json("POST", f"{gateway}/v1/users", {"email": email, "displayName": "Bench", "password": PASSWORD})
    return http_json("POST", f"{gateway}/v1/auth/token", {"email": email, "password": PASSWORD})["accessToken"]


def gateway_env(prefix: str, http_port: int, admin_port: int, users: str, orders: str) -> dict:
    return {f"{prefix}HTTP__ADDR": f"127.0.0.1:{http_port}", f"{prefix}ADMIN__ADDR": f"127.0.0.1:{admin_port}",
            f"{prefix}USERS__URL": users, f"{prefix}ORDERS__URL": orders,
            f"{prefix}RATE_LIMIT__PER_SECOND": "1000000", f"{prefix}RATE_LIMIT__BURST": "1000000",
            f"{prefix}LOG__FORMAT": "json"}


def service_env(name: str, grpc_port: int, admin_port: int, database_url: str, **extra: str) -> dict:
    p = f"{name.upper()}__"
    env = {f"{p}GRPC__ADDR": f"127.0.0.1:{grpc_port}", f"{p}ADMIN__ADDR": f"127.0.0.1:{admin_port}",
           f"{p}DATABASE__URL": database_url, f"{p}LOG__FORMAT": "json"}
    env.update({p + k: v for k, v in extra.items()})
    return env


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def report(name: str, ratios: dict[str, tuple[float, str, float]], data: dict) -> dict:
    """Prints each ratio against its target and writes the suite's JSON."""
    print(f"\n== {name}")
    verdicts = {}
    for label, (value, op, target) in ratios.items():
        met = value >= target if op == ">=" else value <= target
        verdicts[label] = {"value": value, "target": f"{op} {target}", "met": met}
        print(f"  {label:58} {value:8.2f}   target {op} {target:<5} {'met' if met else 'NOT MET'}")
    OUT.mkdir(parents=True, exist_ok=True)
    document = {"suite": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count()}, "duration": DUR, "rounds": ROUNDS,
                "connections": CONNECTIONS, "ratios": verdicts, "data": data}
    (OUT / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")
    return verdicts


# --- suites ------------------------------------------------------------------------

def suite_grpc() -> dict:
    """The gateway vs direct gRPC benchmark that lives in tests/system."""
    out = subprocess.run([str(RELEASE / "gateway_bench"), "4000", "32", str(ROUNDS)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"gateway_bench failed:\n{out.stdout}\n{out.stderr}")
    print(out.stdout.strip())
    m = re.search(r"ratio gateway/direct: throughput ([\d.]+)", out.stdout)
    value = float(m.group(1)) if m else 0.0
    return report("gateway-vs-grpc", {"gateway / direct gRPC throughput (was 0.51)": (value, ">=", 0.5)},
                  {"output": out.stdout})


def node_modules() -> Path:
    """Installs the Fastify peer's packages once, under target/bench/node."""
    prefix = OUT / "node"
    if not (prefix / "node_modules" / "fastify").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "bench" / "node" / "package.json", prefix / "package.json")
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=prefix, check=True)
    return prefix / "node_modules"


def start_edges(s: Stack, *extra: str, wrapper: tuple[str, ...] = (), timeout: float = 30.0) -> tuple[dict, dict]:
    """users and the echo backend, then the hand-written proxy and the gateway in front
    of it (each run under `wrapper`, if any): the ports (and `extra` more) and the two."""
    p = {k: free_port() for k in ("echo", "proxy", "gateway", "gateway_admin", "users", "users_admin", *extra)}
    descriptors = s.work / "echo.pb"
    subprocess.run([str(PEERS / "echo-server"), "--descriptor-set", str(descriptors)], check=True)
    s.start("users", [str(RELEASE / "users")], service_env("users", p["users"], p["users_admin"],
            f"sqlite://{s.work}/users.db"), admin_port=p["users_admin"])
    s.start("echo", [str(PEERS / "echo-server"), f"127.0.0.1:{p['echo']}"], port=p["echo"])
    config = s.work / "gateway.toml"
    # The echo route is not public: every request's token is verified.
    config.write_text(f'[[upstreams]]\ndescriptor_set = "{descriptors}"\nservices = ["echo.v1.Echo"]\n'
                      f'url = "http://127.0.0.1:{p["echo"]}"\n')
    edges = {
        "proxy": s.start("proxy", [*wrapper, str(PEERS / "hand-proxy"), f"127.0.0.1:{p['proxy']}",
                                   f"http://127.0.0.1:{p['echo']}"], port=p["proxy"], timeout=timeout),
        "gateway": s.start("gateway", [*wrapper, str(RELEASE / "gateway"), "--config", str(config)],
                           gateway_env("GATEWAY__", p["gateway"], p["gateway_admin"],
                                       f"http://127.0.0.1:{p['users']}", "http://127.0.0.1:1"),
                           admin_port=p["gateway_admin"], timeout=timeout),
    }
    return p, edges


def suite_edge() -> dict:
    modules = node_modules()
    with stack("edge") as s:
        p, edges = start_edges(s, "fastify")
        edges["fastify"] = s.start("fastify", ["node", str(ROOT / "bench" / "node" / "fastify_gw.js")],
                                   {"PORT": str(p["fastify"]), "UPSTREAM": f"127.0.0.1:{p['echo']}",
                                    "NODE_PATH": str(modules)}, port=p["fastify"])
        token = sign_in(f"http://127.0.0.1:{p['gateway']}", "edge@example.com")
        urls = {name: f"http://127.0.0.1:{p[name]}/echo" for name in edges}
        for name, proc in edges.items():  # warm-up: connections, pools, JIT
            wrk(urls[name], {"edge": proc.pid}, "post.lua", token, duration="2s")
        runs: dict[str, list] = {name: [] for name in edges}
        for _ in range(ROUNDS):
            for name, proc in edges.items():
                runs[name].append(wrk(urls[name], {"edge": proc.pid}, "post.lua", token))
        for name, rs in runs.items():
            if any(r["non_2xx"] or r["socket_errors"] for r in rs):
                sys.exit(f"{name} answered errors under load: {rs}")
    med = {name: median(rs) for name, rs in runs.items()}
    g, h, f = med["gateway"], med["proxy"], med["fastify"]
    cpu = "edge_cpu_us_per_request"
    for name, m in med.items():
        print(f"  {name:8} {m['rps']:9.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
              f"CPU {m[cpu]:6.1f} us/request")
    return report("edge-overhead", {
        "gateway / hand-written proxy: throughput": (ratio(g["rps"], h["rps"]), ">=", 0.85),
        "gateway / hand-written proxy: CPU per request": (ratio(g[cpu], h[cpu]), "<=", 1.2),
        "gateway / Fastify: throughput": (ratio(g["rps"], f["rps"]), ">=", 5.0),
    }, {"median": med, "runs": runs})


def requests_over(method: str, url: str, token: str, count: int, body: dict | None = None,
                  threads: int = 4) -> None:
    """`count` authenticated `method` requests of `url` (with `body` as JSON) over
    `threads` keep-alive connections; any answer but 200 ends the run."""
    address, path = url.split("//", 1)[1].split("/", 1)
    host, port = address.rsplit(":", 1)
    payload = None if body is None else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    failures = []

    def worker(n: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        for _ in range(n):
            connection.request(method, f"/{path}", payload, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    workers = [threading.Thread(target=worker, args=(count // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        sys.exit(f"{url} answered {failures[:5]}")


def echo_requests(url: str, token: str, count: int) -> None:
    """`count` POST /echo requests."""
    requests_over("POST", url, token, count, {"message": "hello"})


def callgrind_total(pid: int, work: Path, keep: Path) -> int:
    """Instructions counted since the last reset, dumped now; the dump is kept as `keep`
    (for `callgrind_annotate`)."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    newest = max(work.glob(f"callgrind.{pid}*"), key=lambda f: f.stat().st_mtime)
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(newest, keep)
    for line in newest.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    sys.exit(f"no instruction total in {newest}")


def suite_instructions() -> dict:
    requests = int(os.environ.get("INSTRUCTION_REQUESTS", "2000"))
    with stack("instructions") as s:
        callgrind = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={s.work}/callgrind.%p")
        p, edges = start_edges(s, wrapper=callgrind, timeout=300)
        token = sign_in(f"http://127.0.0.1:{p['gateway']}", "instructions@example.com")
        counts = {}
        for name, proc in edges.items():
            url = f"http://127.0.0.1:{p[name]}/echo"
            echo_requests(url, token, 400)  # warm-up: connections, pools, caches
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            echo_requests(url, token, requests)
            profile = OUT / "callgrind" / f"{name}.out"
            counts[name] = round(callgrind_total(proc.pid, s.work, profile) / requests)
    for name, count in counts.items():
        print(f"  {name:8} {count:9d} instructions/request (user space, {requests} requests;"
              f" profile in {OUT / 'callgrind' / (name + '.out')})")
    return report("edge-instructions", {
        "gateway / hand-written proxy: instructions per request": (
            ratio(counts["gateway"], counts["proxy"]), "<=", 1.2),
    }, {"instructions_per_request": counts, "requests": requests})


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def database(name: str) -> str:
    psql(PG_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(PG_URL, f"CREATE DATABASE {name}")
    return PG_URL.rsplit("/", 1)[0] + f"/{name}"


def pgbench(url: str) -> dict:
    seconds = int(DUR.rstrip("s"))
    out = subprocess.run(["pgbench", "-n", "-S", f"-c{CONNECTIONS}", "-j2", f"-T{seconds}", url],
                         capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"tps = ([\d.]+)", out)
    if not m:
        sys.exit(f"pgbench failed:\n{out}")
    return {"tps": float(m.group(1))}


def suite_orders() -> dict:
    pg_bench = database("bench_pgbench")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", pg_bench], check=True, capture_output=True)
    users_db, orders_db = database("bench_users"), database("bench_orders")
    with stack("orders") as s:
        p = {k: free_port() for k in ("users", "users_admin", "orders", "orders_admin", "gateway", "gateway_admin")}
        users = s.start("users", [str(RELEASE / "users")],
                        service_env("users", p["users"], p["users_admin"], users_db), admin_port=p["users_admin"])
        orders = s.start("orders", [str(RELEASE / "orders")],
                         service_env("orders", p["orders"], p["orders_admin"], orders_db,
                                     USERS__URL=f"http://127.0.0.1:{p['users']}"), admin_port=p["orders_admin"])
        gateway = s.start("gateway", [str(RELEASE / "gateway")],
                          gateway_env("GATEWAY__", p["gateway"], p["gateway_admin"], f"http://127.0.0.1:{p['users']}",
                                      f"http://127.0.0.1:{p['orders']}"), admin_port=p["gateway_admin"])
        procs = {"users": users, "orders": orders, "gateway": gateway}
        time.sleep(2)
        idle = {name: round(rss_mib(proc.pid), 1) for name, proc in procs.items()}
        base = f"http://127.0.0.1:{p['gateway']}"
        token = sign_in(base, "orders@example.com")
        order = http_json("POST", f"{base}/v1/orders",
                          {"items": [{"sku": "BOOK-1", "quantity": 2, "unitPriceCents": "1250"}]}, token)
        url = f"{base}/v1/orders/{order['id']}"
        pids = {name: proc.pid for name, proc in procs.items()}

        peak = {name: 0.0 for name in procs}
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                for name, proc in procs.items():
                    peak[name] = max(peak[name], rss_mib(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        wrk(url, pids, "get.lua", token, duration="2s")  # warm-up
        pgbench(pg_bench)

        def flooded_reads() -> dict:
            """The same reads while a flood of sign-ins (each an Argon2 hash) runs beside them."""
            users_before = ticks(users.pid)
            flood = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{int(DUR.rstrip('s')) + 2}s", "-s",
                                      str(ROOT / "bench" / "wrk" / "sign-in.lua"), f"{base}/v1/auth/token"],
                                     stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, EMAIL="orders@example.com", PASSWORD=PASSWORD))
            time.sleep(1)
            reads = wrk(url, pids, "get.lua", token)
            flood_out, _ = flood.communicate(timeout=60)
            sign_ins = int(re.search(r"(\d+) requests in", flood_out).group(1))
            reads["sign_ins"] = sign_ins
            reads["users_cpu_ms_per_sign_in"] = round(
                (ticks(users.pid) - users_before) / os.sysconf("SC_CLK_TCK") * 1e3 / max(sign_ins, 1), 2)
            time.sleep(1)  # hashes of sign-ins cut off by the flood's end finish before the next round
            return reads

        # Reads alone, pgbench and reads beside a flood, interleaved: each ratio compares
        # medians of rounds that met the same noise.
        runs: dict[str, list] = {"orders": [], "pgbench": [], "flooded": []}
        for _ in range(ROUNDS):
            runs["orders"].append(wrk(url, pids, "get.lua", token, with_postgres=True))
            runs["pgbench"].append(pgbench(pg_bench))
            runs["flooded"].append(flooded_reads())
        flooded = median(runs["flooded"])
        sampling.set()
        sampler.join()
        for r in runs["orders"] + runs["flooded"]:
            if r["non_2xx"] or r["socket_errors"]:
                sys.exit(f"GET /v1/orders/{{id}} answered errors under load: {r}")
    med = {"orders": median(runs["orders"]), "pgbench": median(runs["pgbench"])}
    o = med["orders"]
    print(f"  GET /v1/orders/{{id}} {o['rps']:9.0f} req/s  p50 {o['p50_ms']:6.2f} ms  p99 {o['p99_ms']:6.2f} ms; "
          f"pgbench -S {med['pgbench']['tps']:9.0f} tps")
    print("  CPU per request (us): " + ", ".join(f"{n} {o[f'{n}_cpu_us_per_request']}"
                                                 for n in ("gateway", "orders", "users", "postgres")))
    print(f"  start to ready (ms): {s.ready_ms}; idle RSS (MiB): {idle}; peak RSS under load (MiB): "
          f"{ {k: round(v, 1) for k, v in peak.items()} }")
    print(f"  p99 during a sign-in flood: {flooded['p99_ms']:.2f} ms (alone {o['p99_ms']:.2f} ms); "
          f"{flooded['sign_ins']} sign-ins at {flooded['users_cpu_ms_per_sign_in']} ms of users' CPU each")
    ratios = {
        "GET /v1/orders/{id} / pgbench -S": (ratio(o["rps"], med["pgbench"]["tps"]), ">=", 0.25),
        "slowest start to ready (s)": (round(max(s.ready_ms.values()) / 1000, 3), "<=", 1.0),
        "largest idle RSS (MiB)": (max(idle.values()), "<=", 20.0),
        "whole stack peak RSS under load (MiB)": (round(sum(peak.values()), 1), "<=", 256.0),
        "p99 during a sign-in flood / alone": (ratio(flooded["p99_ms"], o["p99_ms"]), "<=", 2.0),
    }
    return report("orders-vs-pgbench", ratios, {"median": med, "runs": runs, "flooded": flooded,
                                                 "start_to_ready_ms": s.ready_ms, "idle_rss_mib": idle,
                                                 "peak_rss_mib": peak})


def suite_orders_profile() -> dict:
    """Where a `GET /v1/orders/{id}` goes in orders and in the gateway: each under
    callgrind in turn (the other at full speed), 400 reads of warm-up, then
    `INSTRUCTION_REQUESTS` counted. No target: the profiles are for reading."""
    requests = int(os.environ.get("INSTRUCTION_REQUESTS", "2000"))
    counts = {}
    for profiled in ("orders", "gateway"):
        users_db, orders_db = database("bench_users"), database("bench_orders")
        with stack(f"profile-{profiled}") as s:
            callgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={s.work}/callgrind.%p"]
            wrap = {name: callgrind if name == profiled else [] for name in ("orders", "gateway")}
            p = {k: free_port() for k in ("users", "users_admin", "orders", "orders_admin", "gateway", "gateway_admin")}
            s.start("users", [str(RELEASE / "users")],
                    service_env("users", p["users"], p["users_admin"], users_db), admin_port=p["users_admin"])
            orders = s.start("orders", [*wrap["orders"], str(RELEASE / "orders")],
                             service_env("orders", p["orders"], p["orders_admin"], orders_db,
                                         USERS__URL=f"http://127.0.0.1:{p['users']}"),
                             admin_port=p["orders_admin"], timeout=300)
            gateway = s.start("gateway", [*wrap["gateway"], str(RELEASE / "gateway")],
                              gateway_env("GATEWAY__", p["gateway"], p["gateway_admin"],
                                          f"http://127.0.0.1:{p['users']}", f"http://127.0.0.1:{p['orders']}"),
                              admin_port=p["gateway_admin"], timeout=300)
            base = f"http://127.0.0.1:{p['gateway']}"
            token = sign_in(base, "profile@example.com")
            order = http_json("POST", f"{base}/v1/orders",
                              {"items": [{"sku": "BOOK-1", "quantity": 2, "unitPriceCents": "1250"}]}, token)
            url = f"{base}/v1/orders/{order['id']}"
            proc = orders if profiled == "orders" else gateway
            requests_over("GET", url, token, 400)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            requests_over("GET", url, token, requests)
            profile = OUT / "callgrind" / f"orders-read-{profiled}.out"
            counts[profiled] = round(callgrind_total(proc.pid, s.work, profile) / requests)
            print(f"  {profiled:8} {counts[profiled]:9d} instructions per GET /v1/orders/{{id}} "
                  f"(user space, {requests} reads; profile in {profile})")
    return report("orders-profile", {}, {"instructions_per_read": counts, "requests": requests})


SUITES = {"grpc": suite_grpc, "edge": suite_edge, "instructions": suite_instructions, "orders": suite_orders}
# Run only when named: `make bench SUITES=orders-profile`.
ON_REQUEST = {"orders-profile": suite_orders_profile}


def main() -> int:
    known = {**SUITES, **ON_REQUEST}
    chosen = sys.argv[1:] or list(SUITES)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        sys.exit(f"unknown suite {unknown}; choose from {list(known)}")
    for tool in ("wrk", "pgbench", "psql", "node", "npm", "valgrind"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian: apt-get install wrk postgresql-client nodejs npm valgrind)")
    verdicts = {name: known[name]() for name in chosen}
    missed = [f"{suite}: {label}" for suite, vs in verdicts.items() for label, v in vs.items() if not v["met"]]
    print(f"\nresults under {OUT}/; " + ("every target met" if not missed else f"targets not met: {missed}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
