#!/usr/bin/env bash
# The restart benchmark (docs/benchmarks.md "restart"): builds the release tree, then runs
# restart_bench as root and writes bench/results/restart-<UTC time>.json plus the markdown table.
# Nothing else may run on the machine meanwhile (no build, no test suite, no other lab).
#
# Usage: bench/restart/run.sh [restart_bench run options]   (defaults: --services 10000
#        --endpoints 10 --rounds 5; a few minutes after the build)
# A smoke run: bench/restart/run.sh --services 100 --rounds 1 --out /tmp/smoke.json
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (network namespaces, cgroups, BPF)" >&2; exit 1; }

source bench/prepare_run.sh
bench_prepare restart "$@"
"$dir/bench/restart/restart_bench" run --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/restart-bench-$stamp.md"
echo "run.sh: table also in /tmp/restart-bench-$stamp.md" >&2
