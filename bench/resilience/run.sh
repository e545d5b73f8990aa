#!/usr/bin/env bash
# The resilience benchmark (docs/benchmarks.md "resilience"): builds the release tree, then runs
# resilience_bench as root and writes bench/results/resilience-<UTC time>.json plus the markdown
# tables.
#
# NOTHING ELSE MAY RUN on the machine meanwhile: no build, no test suite, no other lab. The cost
# variants are interleaved so that slow drifts hit them alike, but a busy CPU still widens every
# spread, and it delays the dead-backend trials' paced connects.
#
# Usage: bench/resilience/run.sh [resilience_bench run options]   (defaults: --services 10
#        --endpoints 10 --connects 20000 --warmup 1000 --rounds 10 --thresholds 5,1 --paces 200,0
#        --repeats 10; about a minute after the build)
# A smoke run: bench/resilience/run.sh --connects 500 --warmup 100 --rounds 1 --repeats 1 --out /tmp/smoke.json
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, cgroups, BPF)" >&2
  exit 1
fi
command -v ip >/dev/null || { echo "run.sh: ip is missing (scripts/install-deps.sh)" >&2; exit 1; }

source bench/prepare_run.sh
bench_prepare resilience "$@"

"$dir/bench/resilience/resilience_bench" run --git-rev "$rev" "${out_args[@]}" "$@" | tee "/tmp/resilience-bench-$stamp.md"
echo "run.sh: tables also in /tmp/resilience-bench-$stamp.md" >&2
