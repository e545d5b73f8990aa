#!/usr/bin/env bash
# Configures and builds one build tree: `release` (build/release, what the demo runs), `test`
# (build/test, everything with AddressSanitizer and UndefinedBehaviorSanitizer, what the suite runs)
# or `fuzz` (build/fuzz, clang: only the libFuzzer targets of test/fuzz and what they link).
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-release}
targets=()
compilers=()
case "$flavour" in
  release) dir=build/release; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKMESH_SANITIZE=OFF) ;;
  test) dir=build/test; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKMESH_SANITIZE=ON) ;;
  fuzz)
    dir=build/fuzz
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKMESH_FUZZ=ON)
    # Read by the first configure only (then cached), so a rerun does not count as a new compiler.
    compilers=(CC=clang CXX=clang++)
    targets=(--target sockmesh_fuzz)
    ;;
  *) echo "usage: scripts/build.sh [release|test|fuzz]" >&2; exit 2 ;;
esac

env "${compilers[@]}" cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
echo "$dir"
