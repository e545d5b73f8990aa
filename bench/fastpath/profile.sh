#!/usr/bin/env bash
# Where a same-node fast-path transfer spends its CPU (docs/benchmarks.md "fastpath", profile): one
# lab node, two Workload pods, meshcp and meshd (kernel.bpf_stats_enabled=1), one iperf3 stream over the fast
# path for D seconds under `perf record -a -g`. Prints the sk_msg program's runs and run time per
# message (the kernel's own statistics) and perf's top kernel symbols. Root; nothing else running.
#
# Usage: bench/fastpath/profile.sh [--build DIR] [--duration S]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../build/release duration=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
build=$(cd "$build" && pwd)
meshd=$build/agent/meshd meshctl=$build/cli/meshctl meshlab=$build/lab/meshlab meshcp=$build/controlplane/meshcp
work=$(mktemp -d /tmp/sockmesh-fpprofile-XXXXXX)
run=""
cleanup() { [ -n "$run" ] && "$meshlab" down "$run" >/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$meshlab" up --nodes 1 --owner-pid $$ --pod client@1:10.78.1.20 --pod srv@1:10.78.1.21 > "$work/lab.txt"
run=$(sed -n 's/^RUN_ID=//p' "$work/lab.txt")
node=sm$run-n1
cgroup=$(sed -n "s/^node 1 .*workload_cgroup=\([^ ]*\).*/\1/p" "$work/lab.txt")
"$meshlab" exec "$run" --pod srv --background --log "$work/iperf3.log" -- iperf3 -s -p 5201 >/dev/null
mkdir -p "$work/cp"
"$meshlab" exec "$run" --node 1 --background --log "$work/meshcp.log" -- \
  "$meshcp" --state-dir "$work/cp/state" --listen "unix:$work/cp/xds.sock" --api-socket "$work/cp/api.sock" \
  --metrics-address off >/dev/null
mctl() { "$meshctl" --controlplane "$work/cp/api.sock" "$@"; }
for _ in $(seq 100); do mctl cp status >/dev/null 2>&1 && break; sleep 0.1; done
{
  printf 'apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: %s}\nspec: {addresses: [10.77.0.1]}\n---\n' "$node"
  for pod in client:10.78.1.20 srv:10.78.1.21; do
    printf 'apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: %s, namespace: bench}\n' "${pod%%:*}"
    printf 'spec: {node: %s, serviceAccount: %s, addresses: [%s], cgroupPath: %s}\n---\n' \
      "$node" "${pod%%:*}" "${pod#*:}" "${pod%%:*}"
  done
} > "$work/mesh.yaml"
mctl apply -f "$work/mesh.yaml" >/dev/null
join=$(mctl node add "$node")
"$meshlab" exec "$run" --node 1 --background --log "$work/meshd.log" -- \
  "$meshd" --node "$node" --cgroup "$cgroup" --controlplane "unix:$work/cp/xds.sock" --state-dir "$work/state" \
  --join-token "$(grep -o 'smt1\.[0-9a-f.]*' <<< "$join")" --ca-cert-hash "$(grep -o 'sha256:[0-9a-f]*' <<< "$join")" \
  --metrics-address off >/dev/null
# The kernel's run statistics for the programs, while this runs (restored on exit).
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$stats_was"; cleanup' EXIT
sysctl -qw kernel.bpf_stats_enabled=1
for _ in $(seq 100); do
  [ "$("$meshctl" --node "$node" fastpath -o json 2>/dev/null | jq '[.workloads[]? | select(.netnsCookie)] | length')" = 2 ] && break
  sleep 0.1
done
"$meshlab" exec "$run" --pod client -- iperf3 -c 10.78.1.21 -p 5201 -t 1 >/dev/null  # warm-up

# Summed over every loaded sm_fastpath_msg (an earlier agent's stays loaded while sockets use it).
prog_stats() {
  bpftool prog show -j | jq -c '[.[] | select(.name == "sm_fastpath_msg")]
    | {run_cnt: (map(.run_cnt // 0) | add // 0), run_time_ns: (map(.run_time_ns // 0) | add // 0)}'
}
before=$(prog_stats)
bytes_before=$("$meshctl" --node "$node" fastpath -o json | jq -r '.redirectedBytes // "0"')
perf record -a -g -o "$work/perf.data" -- \
  "$meshlab" exec "$run" --pod client -- iperf3 -c 10.78.1.21 -p 5201 -t "$duration" -J > "$work/iperf.json" 2>/dev/null
after=$(prog_stats)
bytes=$(( $("$meshctl" --node "$node" fastpath -o json | jq -r '.redirectedBytes // "0"') - bytes_before ))
jq -n --argjson b "$before" --argjson a "$after" --argjson bytes "$bytes" \
  --argjson gbit "$(jq '.end.sum_received.bits_per_second / 1e9' "$work/iperf.json")" '
  ($a.run_cnt - $b.run_cnt) as $runs | ($a.run_time_ns - $b.run_time_ns) as $ns
  | {gbit_s: $gbit, redirected_bytes: $bytes, sk_msg_runs: $runs, bytes_per_run: ($bytes / $runs),
     sk_msg_ns_per_run: ($ns / $runs), sk_msg_cpu_share_of_one_cpu: ($ns / 1e9 / '"$duration"')}'
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9.]+%' | head -n 25
