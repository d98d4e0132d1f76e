#!/usr/bin/env bash
# Installs what `make bench` drives its load with, where it is missing: wrk, pgbench
# and psql, Node.js with npm (the Fastify peer), valgrind (instruction counts). Debian
# packages; needs root or sudo.
set -euo pipefail

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v pgbench >/dev/null || missing+=(postgresql-client)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v valgrind >/dev/null || missing+=(valgrind)
((${#missing[@]})) || exit 0

sudo=()
((EUID == 0)) || sudo=(sudo)
echo "ensure-bench-tools: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
