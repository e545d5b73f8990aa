#!/usr/bin/env bash
# The cross-node mTLS benchmark (docs/benchmarks.md "mesh: cross-node mTLS"): builds the release
# tree, then runs bench/mesh/mesh_bench.sh as root and writes bench/results/mesh-<UTC time>.json
# plus the markdown table.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab. The variants
# (no mesh, sockmesh, the haproxy pair) are interleaved so that slow drifts hit them alike, but a
# busy CPU still widens every spread.
#
# Usage: bench/mesh/run.sh [mesh_bench.sh options]   (defaults: --rounds 5 --duration 5
#        --wrk-threads 2 --wrk-connections 16)
# A smoke run: bench/mesh/run.sh --rounds 1 --duration 1 --out /tmp/smoke.json
# Profiles of meshd after the rounds: --profile-dir DIR (perf record --call-graph dwarf).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF, iptables)" >&2
  exit 1
fi
for tool in sockperf wrk iperf3 haproxy nginx iptables-restore openssl jq socat curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

source bench/prepare_run.sh
bench_prepare mesh "$@"

bench/mesh/mesh_bench.sh --build "$dir" --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/mesh-bench-$stamp.md"
echo "run.sh: table also in /tmp/mesh-bench-$stamp.md" >&2
