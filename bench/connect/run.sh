#!/usr/bin/env bash
# The connect benchmark (docs/benchmarks.md "connect"): builds the release tree, then runs
# connect_bench as root and writes bench/results/connect-<UTC time>.json plus the markdown tables.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab. The variants
# are interleaved so that slow drifts hit them alike, but a busy CPU still widens every spread.
#
# Usage: bench/connect/run.sh [connect_bench run options]   (defaults: --services 10,1000,10000
#        --endpoints 10 --connects 20000 --warmup 1000 --rounds 5)
# A smoke run: bench/connect/run.sh --services 10,100 --connects 1000 --rounds 1 --out /tmp/smoke.json
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF, iptables)" >&2
  exit 1
fi
for tool in iptables-restore iptables-save ip; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

source bench/prepare_run.sh
bench_prepare connect "$@"

"$dir/bench/connect/connect_bench" run --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/connect-bench-$stamp.md"
echo "run.sh: tables also in /tmp/connect-bench-$stamp.md" >&2
