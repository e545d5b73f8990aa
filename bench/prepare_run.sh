# Sourced by the benchmarks' run.sh (from the repository root, after their own checks): builds the
# release tree and sets what every run records.
#   bench_prepare NAME "$@"   sets dir (the build tree), stamp (UTC time), rev (git revision, "+dirty"
#                             with uncommitted changes) and out_args (--out bench/results/NAME-<stamp>.json
#                             unless the arguments already give --out); warns when a build or a lab
#                             test is running (the run's numbers are then not to be recorded)
bench_prepare() {
  local name=$1
  shift
  echo "run.sh: nothing else may run on this machine until the benchmark ends" >&2
  dir=$(scripts/build.sh release | tail -n 1)
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev+dirty"; fi
  local has_out=false arg
  for arg in "$@"; do case "$arg" in --out|--out=*) has_out=true ;; esac; done
  out_args=()
  $has_out || out_args=(--out "bench/results/$name-$stamp.json")
  local pattern
  for pattern in cc1plus lb_lab_test; do
    if pgrep -f "$pattern" >/dev/null; then
      echo "run.sh: warning: $pattern is running (another build or lab test); the numbers of this run are not to be recorded" >&2
    fi
  done
}
