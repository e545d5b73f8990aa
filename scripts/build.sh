#!/usr/bin/env bash
# Configures and builds one build tree: `release` (build/release, what the demo runs) or `test`
# (build/test, everything with AddressSanitizer and UndefinedBehaviorSanitizer, what the suite runs).
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-release}
case "$flavour" in
  release) dir=build/release; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKMESH_SANITIZE=OFF) ;;
  test) dir=build/test; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKMESH_SANITIZE=ON) ;;
  *) echo "usage: scripts/build.sh [release|test]" >&2; exit 2 ;;
esac

cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "$dir"
