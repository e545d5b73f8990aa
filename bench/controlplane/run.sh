#!/usr/bin/env bash
# The control-plane benchmark (docs/benchmarks.md "control plane"): builds the release tree, then
# runs cp_bench as root and writes bench/results/controlplane-<UTC time>.json plus the tables.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab.
#
# Usage: bench/controlplane/run.sh [cp_bench options]   (defaults: --services 10000 --endpoints 10
#        --nodes 4 --sync-rounds 3 --changes 300 --warmup 20)
# A smoke run: bench/controlplane/run.sh --services 100 --changes 20 --sync-rounds 1 --out /tmp/smoke.json
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF)" >&2
  exit 1
fi

source bench/prepare_run.sh
bench_prepare controlplane "$@"

"$dir/bench/controlplane/cp_bench" --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/cp-bench-$stamp.md"
echo "run.sh: tables also in /tmp/cp-bench-$stamp.md" >&2
