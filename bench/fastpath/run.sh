#!/usr/bin/env bash
# The same-node fast path benchmark (M7; bench/fastpath/README.md): builds the release tree, then
# runs bench/fastpath/fastpath_bench.sh as root and writes bench/results/fastpath-<UTC time>.json
# plus the markdown tables.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab, no other
# benchmark. The variants (plain, fastpath, samenode-off, agent-on/off, crossnode-on/off) are
# interleaved so that slow drifts hit them alike, but a busy CPU still widens every spread.
#
# Usage: bench/fastpath/run.sh [fastpath_bench.sh options]   (defaults: --rounds 5 --duration 5
#        --wrk-threads 2 --wrk-connections 16 --large-message 65506)
# A smoke run: bench/fastpath/run.sh --quick   (1 round of 1 s samples; its JSON goes to
#        /tmp/fastpath-smoke-<UTC time>.json unless --out is given, never into bench/results)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF)" >&2
  exit 1
fi
for tool in sockperf wrk iperf3 nginx jq curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

source bench/prepare_run.sh
bench_prepare fastpath "$@"
for arg in "$@"; do
  if [ "$arg" = --quick ] && [ ${#out_args[@]} -gt 0 ]; then out_args=(--out "/tmp/fastpath-smoke-$stamp.json"); fi
done

bench/fastpath/fastpath_bench.sh --build "$dir" --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/fastpath-bench-$stamp.md"
echo "run.sh: tables also in /tmp/fastpath-bench-$stamp.md" >&2
