#!/usr/bin/env python3
"""Start-up time and memory of the release binaries, idle and under load.

Starts users, orders and the gateway from target/release in a throwaway folder
(SQLite, default ports), times each from exec to `/readyz` 200, reads each process's
resident memory from /proc at idle, then runs the gateway benchmark against them
(`gateway_bench`, same arguments) while sampling peak memory, and stops them with
SIGTERM (each must exit 0).

    cargo build --release --bins -p users -p orders -p gateway -p system-tests
    python3 scripts/footprint.py [REQUESTS CONCURRENCY ROUNDS]
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
COMPONENTS = [("users", 9101), ("orders", 9102), ("gateway", 9100)]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def main():
    work = tempfile.mkdtemp(prefix="footprint-")
    env = dict(os.environ, GATEWAY__RATE_LIMIT__PER_SECOND="1000000", GATEWAY__RATE_LIMIT__BURST="1000000")
    for name in ("USERS", "ORDERS", "GATEWAY"):
        env[f"{name}__LOG__FORMAT"] = "json"
    processes = {}
    try:
        for name, port in COMPONENTS:
            started = time.monotonic()
            processes[name] = subprocess.Popen(
                [os.path.join(RELEASE, name)], cwd=work, env=env,
                stdout=open(os.path.join(work, f"{name}.log"), "w"), stderr=subprocess.STDOUT)
            while not ready(port):
                if time.monotonic() - started > 30:
                    sys.exit(f"{name} did not become ready; see {work}/{name}.log")
                time.sleep(0.002)
            print(f"{name:8} start -> ready {1000 * (time.monotonic() - started):6.0f} ms")
        time.sleep(5)
        for name, process in processes.items():
            print(f"{name:8} idle RSS {rss_mib(process.pid):6.1f} MiB")

        peak = {name: 0.0 for name in processes}
        done = threading.Event()

        def sample():
            while not done.is_set():
                for name, process in processes.items():
                    peak[name] = max(peak[name], rss_mib(process.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        bench = subprocess.run(
            [os.path.join(RELEASE, "gateway_bench"), *sys.argv[1:]],
            env=dict(env, BENCH_GATEWAY_URL="http://127.0.0.1:8080", BENCH_USERS_ADDR="http://127.0.0.1:50051"))
        done.set()
        sampler.join()
        for name in processes:
            print(f"{name:8} peak RSS under load {peak[name]:6.1f} MiB")
        if bench.returncode != 0:
            sys.exit("the benchmark failed")
    finally:
        for process in reversed(list(processes.values())):
            process.terminate()
        codes = {name: process.wait(timeout=30) for name, process in processes.items()}
        print("exit codes after SIGTERM:", codes)


if __name__ == "__main__":
    main()
