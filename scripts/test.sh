#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds with sanitizers, runs every ctest label but
# the long soak (unit, bpf, lab and the demo's short mode). Needs root (BPF, namespaces, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: needs root (BPF programs, network namespaces, cgroups)" >&2
  exit 1
fi

scripts/install-deps.sh
scripts/install-chart-tools.sh  # Helm and kubernetes-models for test/chart (build/tools/)
dir=$(scripts/build.sh test | tail -n 1)

# LeakSanitizer: gRPC keeps process-lifetime singletons; anything else leaking fails the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/test/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

(cd "$dir" && ctest --output-on-failure --label-exclude soak --timeout 600 "$@")

# Then the fuzz targets (clang, build/fuzz; docs/testing.md "Fuzzing"): each for a short fixed time
# on a copy of its seed corpus, and its corpus replayed.
fuzz_dir=$(scripts/build.sh fuzz | tail -n 1)
cd "$fuzz_dir"
ctest --output-on-failure -L fuzz --timeout 600 "$@"
