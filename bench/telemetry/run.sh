#!/usr/bin/env bash
# The telemetry cost benchmark (M6; bench/telemetry/README.md): builds the release tree, then runs
# bench/telemetry/telemetry_bench.sh as root and writes bench/results/telemetry-<UTC time>.json plus
# the markdown table.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab, no other
# benchmark. The variants (telemetry off, telemetry on) are interleaved so that slow drifts hit them
# alike, but a busy CPU still widens every spread.
#
# Usage: bench/telemetry/run.sh [telemetry_bench.sh options]   (defaults: --rounds 5
#        --connects 50000 --warmup-connects 2000 --bulk-seconds 10)
# A smoke run: bench/telemetry/run.sh --rounds 1 --connects 5000 --bulk-seconds 2 --out /tmp/smoke.json
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF)" >&2
  exit 1
fi
for tool in iperf3 jq ip; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

source bench/prepare_run.sh
bench_prepare telemetry "$@"

bench/telemetry/telemetry_bench.sh --build "$dir" --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/telemetry-bench-$stamp.md"
echo "run.sh: table also in /tmp/telemetry-bench-$stamp.md" >&2
