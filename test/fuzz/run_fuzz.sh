#!/usr/bin/env bash
# One ctest of label fuzz (test/fuzz/CMakeLists.txt):
#   run_fuzz.sh fuzz   TARGET CORPUS ARTIFACTS SECONDS INPUT_TIMEOUT
#     fuzzes for SECONDS on a copy of CORPUS in a temporary directory (the repository is never
#     written; what the run adds to the corpus is thrown away);
#   run_fuzz.sh replay TARGET CORPUS ARTIFACTS 0 INPUT_TIMEOUT
#     runs every file of CORPUS once (the crashes found before stay fixed).
# Any crash, leak, UBSan report or input over INPUT_TIMEOUT seconds fails it; libFuzzer writes the
# input to ARTIFACTS/ (crash-*, leak-*, timeout-*) and the test prints how to replay it.
set -euo pipefail

mode=$1 target=$2 corpus=$3 artifacts=$4 seconds=$5 input_timeout=$6
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Sanitizers: every report is fatal; libFuzzer itself turns on leak detection.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1:halt_on_error=1

flags=(-timeout="$input_timeout" -rss_limit_mb=2048 -artifact_prefix="$artifacts/"
       -print_final_stats=1)
case "$mode" in
  fuzz)
    cp -r "$corpus" "$work/corpus"
    # -close_fd_mask=1: the targets' own stdout (e.g. logs) stays out of the test's output.
    set +e
    "$target" "${flags[@]}" -max_total_time="$seconds" -close_fd_mask=1 "$work/corpus"
    rc=$?
    set -e
    ;;
  replay)
    set +e
    "$target" "${flags[@]}" "$corpus"/*
    rc=$?
    set -e
    ;;
  *) echo "run_fuzz.sh: unknown mode $mode" >&2; exit 2 ;;
esac
if [ "$rc" -ne 0 ]; then
  echo "run_fuzz.sh: $(basename "$target") failed (exit $rc); inputs kept in $artifacts:" >&2
  ls -1 "$artifacts" >&2 || true
  echo "replay one: $target <file>   (docs/testing.md, \"Fuzzing\")" >&2
fi
exit "$rc"
