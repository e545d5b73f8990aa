#!/usr/bin/env bash
# The same-node fast path benchmark (M7; bench/fastpath/README.md), run by run.sh after it built the
# release tree. A two-node lab with meshcp and meshd on both nodes; seven variants, each a client
# pod talking to a server pod straight at its address (no VIP):
#
#   plain          plainc -> plains (node 1 -> node 1), neither a Workload: the mesh ignores them
#   fastpath       client -> srv1   (node 1 -> node 1), both Workloads, meshd --fast-path on
#   samenode-off   the same with meshd --fast-path off
#   agent-on       client -> srv2   (node 1 -> node 2), client captured: app -> meshd n1 -> mTLS
#                  tunnel -> meshd n2 -> app, both meshd --fast-path on --fast-path-agent-hops on
#                  (app<->agent hops in the kernel)
#   agent-off      the same with --fast-path off
#   crossnode-on   direct -> srv2   (node 1 -> node 2), direct a Workload with captured: false: plain
#                  routing between the nodes, --fast-path on (its sockets must never enter the map)
#   crossnode-off  the same with --fast-path off
#
# Switching modes restarts both meshd with other flags (same --state-dir: the identity is loaded,
# no new join token). A round is three blocks, "on" (meshd's default: plain fastpath crossnode-on),
# "hops" (agent hops on too: agent-on) and "off" (samenode-off agent-off crossnode-off); every round
# starts with the mode the agents are in and has "hops" in the middle, so on and off alternate which
# goes first and a restart always follows agent-on. Each variant runs
# sockperf ping-pong at 1 KB and 64 KB, wrk keep-alive against nginx, iperf3 (one stream). Every
# sample checks its path from the kernel's fast-path counters (and the tunnel's streams) read before
# and after it.
#
# Usage: fastpath_bench.sh --build DIR [--rounds N] [--duration S] [--quick] [--wrk-threads N]
#                          [--wrk-connections N] [--large-message BYTES] [--git-rev REV] [--out FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

build="" rounds=5 duration=5 wrk_threads=2 wrk_conns=16 large=65506 rev=unknown out="" quick=false
rounds_given=false duration_given=false
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; rounds_given=true; shift 2 ;;
    --duration) duration=$2; duration_given=true; shift 2 ;;
    --quick) quick=true; shift ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --wrk-connections) wrk_conns=$2; shift 2 ;;
    --large-message) large=$2; shift 2 ;;
    --git-rev) rev=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "fastpath_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
# --quick: a smoke test of the whole run (1 round of 1 s samples); its numbers are not results.
if $quick; then
  $rounds_given || rounds=1
  $duration_given || duration=1
fi
[ -n "$build" ] || { echo "fastpath_bench: --build DIR is required" >&2; exit 2; }
build=$(cd "$build" && pwd)
meshd=$build/agent/meshd meshctl=$build/cli/meshctl meshlab=$build/lab/meshlab meshcp=$build/controlplane/meshcp
for bin in "$meshd" "$meshctl" "$meshlab" "$meshcp"; do
  [ -x "$bin" ] || { echo "fastpath_bench: $bin is missing (build it)" >&2; exit 1; }
done
"$meshd" --help | grep -q -- --fast-path \
  || { echo "fastpath_bench: $meshd has no --fast-path (rebuild the release tree)" >&2; exit 1; }
# sockperf's largest message is 65,506 bytes ("64 KB" here: 64 KiB less its 30-byte limit).
[ "$large" -ge 14 ] && [ "$large" -le 65506 ] \
  || { echo "fastpath_bench: --large-message must be 14..65506 (sockperf's limits)" >&2; exit 2; }

# Pods. Node 1: plainc/plains (no Workload), client (captured), srv1, direct (captured: false);
# node 2: srv2. Servers run in plains, srv1 and srv2.
plainc_ip=10.78.1.10 plains_ip=10.78.1.11 client_ip=10.78.1.12 srv1_ip=10.78.1.13 direct_ip=10.78.1.14
srv2_ip=10.78.2.10
declare -A pod_of=([plain]=plainc [fastpath]=client [samenode-off]=client [agent-on]=client [agent-off]=client
                   [crossnode-on]=direct [crossnode-off]=direct)
declare -A target_of=([plain]=$plains_ip [fastpath]=$srv1_ip [samenode-off]=$srv1_ip [agent-on]=$srv2_ip
                      [agent-off]=$srv2_ip [crossnode-on]=$srv2_ip [crossnode-off]=$srv2_ip)
# Three modes: "on" is meshd's default (--fast-path on: workload to workload), "hops" adds
# --fast-path-agent-hops on for agent-on alone (an upload through the agent leaves the agent draining
# a backlog it cannot bound — docs/fastpath.md — so the next block always starts with fresh agents),
# "off" is --fast-path off.
block_on=(plain fastpath crossnode-on)
block_hops=(agent-on)
block_off=(samenode-off agent-off crossnode-off)
tests=(pingpong_1k pingpong_large wrk_keepalive iperf)

work=$(mktemp -d /tmp/sockmesh-fastpathbench-XXXXXX)
run="" ok=false
declare -A meshd_pid=()
cleanup() {
  local n
  for n in "${!meshd_pid[@]}"; do
    [ -n "${meshd_pid[$n]}" ] && kill -TERM "${meshd_pid[$n]}" 2>/dev/null || true
  done
  if [ -n "$run" ]; then "$meshlab" down "$run" >/dev/null || echo "fastpath_bench: meshlab down $run failed" >&2; fi
  if $ok; then rm -rf "$work"; else echo "fastpath_bench: logs kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { echo "fastpath_bench: $*" >&2; exit 1; }

# Whether others ran (a build, a lab test) at the start and end of the run: recorded, never ignored.
busy() { jq -n --argjson cc "$(pgrep -fc cc1plus || true)" --argjson lab "$(pgrep -fc lb_lab_test || true)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '{cc1plus: $cc, lb_lab_test: $lab, loadavg: $load}'; }
busy_start=$(busy)

# --- lab -------------------------------------------------------------------------------------------
log "lab: 2 nodes; plainc plains client srv1 direct on node 1, srv2 on node 2"
"$meshlab" up --nodes 2 --owner-pid $$ --pod "plainc@1:$plainc_ip" --pod "plains@1:$plains_ip" \
  --pod "client@1:$client_ip" --pod "srv1@1:$srv1_ip" --pod "direct@1:$direct_ip" --pod "srv2@2:$srv2_ip" \
  > "$work/lab.txt"
run=$(sed -n 's/^RUN_ID=//p' "$work/lab.txt")
[ -n "$run" ] || die "meshlab up printed no RUN_ID"
node_name() { echo "sm$run-n$1"; }
workload_cgroup() { sed -n "s/^node $1 .*workload_cgroup=\([^ ]*\).*/\1/p" "$work/lab.txt"; }
in_pod() { local pod=$1; shift; "$meshlab" exec "$run" --pod "$pod" -- "$@"; }
bg_pod() { local pod=$1 name=$2; shift 2; "$meshlab" exec "$run" --pod "$pod" --background --log "$work/$name.log" -- "$@"; }

# --- servers ---------------------------------------------------------------------------------------
# The HTTP server is bench/mesh's (nginx.conf.in: one worker, keep-alive, GET /1k = 1,024 bytes),
# one instance per server pod with a directory of its own.
log "servers (sockperf, nginx, iperf3) in plains, srv1, srv2; a placeholder process in every client pod"
for pod in plains srv1 srv2; do
  d=$work/http-$pod
  mkdir -p "$d/www" "$d/nginx-tmp"
  sed -e "s|@DIR@|$d|g" "$here/../mesh/nginx.conf.in" > "$d/nginx.conf"
  head -c 1024 /dev/zero | tr '\0' 'x' > "$d/www/1k"
  bg_pod "$pod" "sockperf-$pod" sockperf server --tcp -p 11111 >/dev/null
  bg_pod "$pod" "nginx-$pod" nginx -c "$d/nginx.conf" >/dev/null
  bg_pod "$pod" "iperf3-$pod" iperf3 -s -p 5201 >/dev/null
done
# A pod always has a process (Kubernetes: its sandbox): the agent finds a workload's network
# namespace through a process in its cgroup, and the accepting end of a fast-path connection needs
# the connecting end's namespace. Without one, a client pod would be unknown until the agent's next
# look (every second) after the benchmark's client started.
for pod in plainc client direct; do bg_pod "$pod" "sandbox-$pod" sleep infinity >/dev/null; done

# --- control plane and agents ----------------------------------------------------------------------
log "meshcp on node 1, meshd on both nodes (joined once with meshctl node add)"
api=$work/meshcp/api.sock
xds=unix:$work/meshcp/xds.sock
mkdir -p "$work/meshcp"
"$meshlab" exec "$run" --node 1 --background --log "$work/meshcp.log" -- \
  "$meshcp" --state-dir "$work/meshcp/state" --listen "$xds" --api-socket "$api" >/dev/null
mctl() { "$meshctl" --controlplane "$api" "$@"; }
for _ in $(seq 100); do mctl cp status >/dev/null 2>&1 && break; sleep 0.1; done
mctl cp status >/dev/null
{
  for n in 1 2; do
    printf 'apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: %s}\nspec: {addresses: [10.77.0.%s]}\n---\n' "$(node_name $n)" "$n"
  done
  # plainc and plains are no Workloads: the mesh does not know them.
  for spec in client:1:$client_ip:true srv1:1:$srv1_ip:true direct:1:$direct_ip:false srv2:2:$srv2_ip:true; do
    IFS=: read -r pod n ip cap <<< "$spec"
    printf 'apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: %s, namespace: bench, labels: {app: %s}}\n' "$pod" "$pod"
    printf 'spec: {node: %s, serviceAccount: %s, addresses: [%s], cgroupPath: %s, captured: %s}\n---\n' \
      "$(node_name "$n")" "$pod" "$ip" "$pod" "$cap"
  done
} > "$work/mesh.yaml"
mctl apply -f "$work/mesh.yaml" >/dev/null
declare -A join_args=()
for n in 1 2; do
  mctl node add "$(node_name $n)" > "$work/join-n$n.txt"
  join_args[$n]="--join-token $(grep -o 'smt1\.[0-9a-f.]*' "$work/join-n$n.txt") --ca-cert-hash $(grep -o 'sha256:[0-9a-f]*' "$work/join-n$n.txt")"
done

status() { "$meshctl" --node "$(node_name "$1")" status -o json; }
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
mode="" starts=0 restarts=0
declare -A meshd_log=()
# The node's fast-path state: `meshctl fastpath -o json` (FastPathReport) when this meshctl has it,
# else the line meshd logs at start ("event=fastpath switched_on=.. supported=.. enabled=..").
fastpath_cmd=unknown  # yes|no, found once the first agents answer (detect_fastpath_cmd)
fp_report() { "$meshctl" --node "$(node_name "$1")" fastpath -o json 2>/dev/null; }
detect_fastpath_cmd() {
  if fp_report 1 | jq -e '.enabled | type == "boolean"' >/dev/null 2>&1; then fastpath_cmd=yes; else fastpath_cmd=no; fi
}
fp_enabled() {  # N -> true|false|unknown
  if [ "$fastpath_cmd" = yes ]; then
    fp_report "$1" | jq -r '.enabled' 2>/dev/null || echo unknown
    return
  fi
  sed -n 's/.*event=fastpath switched_on=[a-z]* supported=[a-z]* enabled=\([a-z]*\).*/\1/p' "${meshd_log[$1]}" | tail -n 1 \
    | grep . || echo unknown
}
svids() { status "$1" 2>/dev/null | jq '.mesh.svids // [] | length' 2>/dev/null || echo 0; }
status_pid() { status "$1" 2>/dev/null | jq -r '.pid // "" | tostring' 2>/dev/null || true; }
counter() {  # STATUS_JSON NAME -> the data-path counter's value (0 when absent)
  jq -r --arg name "$2" '[.counters[]? | select(.name == $name) | .value | tonumber] | add // 0' <<< "$1"
}
fp_bytes() { counter "$(status "$1")" fastpath_bytes; }
http_code() {  # POD IP -> the status code of GET /1k (000 when none)
  in_pod "$1" curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$2:8080/1k" 2>/dev/null || true
}

# start_meshd N on|off: starts node N's meshd (join arguments the first time only).
start_meshd() {
  local n=$1 m=$2 extra=()
  starts=$((starts + 1))
  meshd_log[$n]=$work/meshd-n$n-$starts-$m.log
  if [ -n "${join_args[$n]:-}" ]; then read -r -a extra <<< "${join_args[$n]}"; join_args[$n]=""; fi
  meshd_pid[$n]=$("$meshlab" exec "$run" --node "$n" --background --log "${meshd_log[$n]}" -- \
    "$meshd" --node "$(node_name "$n")" --cgroup "$(workload_cgroup "$n")" --controlplane "$xds" \
    --state-dir "$work/state-n$n" --fast-path "$([ "$m" = off ] && echo off || echo on)" \
    --fast-path-agent-hops "$([ "$m" = hops ] && echo on || echo off)" "${extra[@]}")
}
stop_meshd() {
  local n=$1
  kill -TERM "${meshd_pid[$n]}"
  for _ in $(seq 200); do alive "${meshd_pid[$n]}" || { meshd_pid[$n]=""; return 0; }; sleep 0.05; done
  die "meshd on node $n (${meshd_pid[$n]}) did not stop in 10 s"
}
# wait_ready on|off: both agents answer with the new pid, hold their SVIDs, report the fast path in
# the mode asked for, and a request of every kind goes the way that mode claims.
wait_ready() {
  local m=$1 n ok_now=false want
  for _ in $(seq 300); do
    ok_now=true
    for n in 1 2; do
      alive "${meshd_pid[$n]}" || { tail -n 20 "${meshd_log[$n]}" >&2; die "meshd on node $n exited at start"; }
      [ "$(status_pid "$n")" = "${meshd_pid[$n]}" ] || { ok_now=false; break; }
    done
    $ok_now && [ "$(svids 1)" -ge 3 ] && [ "$(svids 2)" -ge 1 ] && break
    ok_now=false
    sleep 0.1
  done
  $ok_now || die "agents not ready in 30 s (pid or SVIDs; logs: ${meshd_log[1]} ${meshd_log[2]})"
  [ "$fastpath_cmd" != unknown ] || detect_fastpath_cmd
  want=false; [ "$m" != off ] && want=true
  for n in 1 2; do
    local e
    e=$(fp_enabled "$n")
    if [ "$fastpath_cmd" = yes ] && [ "$(fp_report "$n" | jq -r '.agentHops // false')" != "$([ "$m" = hops ] && echo true || echo false)" ]; then
      die "node $n: the agent hops are not as asked (mode $m)"
    fi
    if [ "$e" != "$want" ]; then
      grep 'event=fastpath ' "${meshd_log[$n]}" >&2 || true
      [ "$fastpath_cmd" = yes ] && fp_report "$n" | jq -c '{enabled, switchedOn, supported, missingFeatures}' >&2
      die "node $n: fast path enabled=$e, wanted $want (--fast-path $m)"
    fi
  done
  # Every client reaches its server; with the fast path on, the probes' bytes are redirected (the
  # agents know every pod's namespace: that can take up to a second after a start).
  local probe from to b0 b1 moved=false
  for probe in "plainc $plains_ip" "direct $srv2_ip" "client $srv2_ip" "client $srv1_ip"; do
    read -r from to <<< "$probe"
    for _ in $(seq 100); do [ "$(http_code "$from" "$to")" = 200 ] && break; sleep 0.1; done
    [ "$(http_code "$from" "$to")" = 200 ] || die "$from cannot reach nginx on $to (--fast-path $m)"
  done
  for _ in $(seq 100); do
    b0=$(fp_bytes 1)
    http_code client "$srv1_ip" > /dev/null
    http_code client "$srv2_ip" > /dev/null
    b1=$(fp_bytes 1)
    if [ "$b1" -gt "$b0" ]; then moved=true; [ "$m" != off ] && break; fi
    [ "$m" = off ] && break
    sleep 0.1
  done
  if [ "$m" != off ] && ! $moved; then die "--fast-path on: the probes' bytes were never redirected on node 1"; fi
  if [ "$m" = off ] && $moved; then die "--fast-path off: node 1 still redirected the probes' bytes"; fi
}
set_mode() {  # on|hops|off: (re)starts both agents in that mode unless they are in it
  local m=$1 n
  [ "$mode" = "$m" ] && return 0
  if [ -n "$mode" ]; then
    log "restart both meshd in mode $m"
    for n in 1 2; do stop_meshd "$n"; done
    restarts=$((restarts + 1))
  fi
  for n in 1 2; do start_meshd "$n" "$m"; done
  wait_ready "$m"
  mode=$m
}
set_mode on
log "agents ready (fast-path state from: $([ "$fastpath_cmd" = yes ] && echo 'meshctl fastpath' || echo "meshd's start log; meshctl has no fastpath yet"))"

# --- counters --------------------------------------------------------------------------------------
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# snap: one JSON object with everything a sample compares before and after: the kernel's fast-path
# counters of both nodes (the data-path counters of `meshctl status`; the same ones FastPathReport
# reports), the tunnel's streams, captured connections, meshd CPU.
snap() {
  local s1 s2
  s1=$(status 1) s2=$(status 2)
  jq -n --argjson s1 "$s1" --argjson s2 "$s2" \
    --argjson m1 "$(ticks "${meshd_pid[1]}")" --argjson m2 "$(ticks "${meshd_pid[2]}")" '
    def n(x): (x // 0 | tonumber);
    def c(s; name): [s.counters[]? | select(.name == name) | .value | tonumber] | add // 0;
    def fallbacks(s; node): ["no_netns", "map_full", "peer_missing", "peer_gone"]
      | map(. as $r | {key: "fp_\($r)_\(node)", value: c(s; "fastpath_" + $r)}) | from_entries;
    {fp_bytes_n1: c($s1; "fastpath_bytes"), fp_msgs_n1: c($s1; "fastpath_messages"),
     fp_sockets_n1: c($s1; "fastpath_sockets"),
     fp_bytes_n2: c($s2; "fastpath_bytes"), fp_msgs_n2: c($s2; "fastpath_messages"),
     fp_sockets_n2: c($s2; "fastpath_sockets")} + fallbacks($s1; "n1") + fallbacks($s2; "n2") + {
     out_streams: n($s1.mesh.outbound.streamsOpened), in_streams: n($s2.mesh.inbound.streamsOpened),
     captured: n($s1.mesh.capturedAccepted), meshd_ticks: ($m1 + $m2)}'
}
delta() { jq -n --argjson a "$1" --argjson b "$2" '$b | with_entries(.value -= $a[.key])'; }
clk_tck=$(getconf CLK_TCK)

# --- one test --------------------------------------------------------------------------------------
pct() { awk -v p="$2" '$0 ~ "percentile " p " =" {print $NF}' "$1"; }
sockperf_json() {  # file -> {p50,p99,observations} in µs (full RTT)
  local p50 p99 obs
  p50=$(pct "$1" 50.000) p99=$(pct "$1" 99.000)
  obs=$(sed -n 's/.*Total \([0-9]*\) observations.*/\1/p' "$1" | head -n1)
  [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$obs" ] || { tail -n 5 "$1" >&2; return 1; }
  jq -n --argjson p50 "$p50" --argjson p99 "$p99" --argjson obs "$obs" '{p50: $p50, p99: $p99, observations: $obs}'
}
wrk_json() {
  local reqs rps errs non2xx
  reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1")
  [ -n "$reqs" ] && [ -n "$rps" ] || { tail -n 5 "$1" >&2; return 1; }
  errs=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1" \
    | awk '{print $1 + $2 + $3 + $4}')
  non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1")
  jq -n --argjson r "$reqs" --argjson rps "$rps" --argjson e "${errs:-0}" --argjson x "${non2xx:-0}" \
    '{requests: $r, rps: $rps, socket_errors: $e, non_2xx: $x}'
}
# measure VARIANT TEST DURATION -> JSON of the test's figures, the payload it moved at least
# (bytes_moved_min: what the fast-path counters must show where it carries the traffic), the counter
# deltas and whether the traffic went the way the variant claims.
measure() {
  local v=$1 t=$2 d=$3 pod=${pod_of[$1]} ip=${target_of[$1]} f="$work/out-$1-$2.txt" before after r lim
  lim=$((d + 30))  # a hung client fails the run instead of stalling it
  before=$(snap)
  case "$t" in
    pingpong_1k|pingpong_large)
      local m=1024; [ "$t" = pingpong_large ] && m=$large
      in_pod "$pod" timeout "$lim" sockperf ping-pong --tcp --full-rtt -i "$ip" -p 11111 -m "$m" -t "$d" > "$f" 2>&1 \
        || { tail -n 5 "$f" >&2; die "$v $t: sockperf failed"; }
      r=$(sockperf_json "$f") || die "$v $t: no sockperf figures in $f"
      # every observation is one message each way
      r=$(jq --argjson m "$m" '. + {message_bytes: $m, bytes_moved_min: (.observations * $m * 2)}' <<< "$r") ;;
    wrk_keepalive)
      in_pod "$pod" timeout "$lim" wrk -t "$wrk_threads" -c "$wrk_conns" -d "${d}s" "http://$ip:8080/1k" > "$f" 2>&1 \
        || { tail -n 5 "$f" >&2; die "$v $t: wrk failed"; }
      r=$(wrk_json "$f") || die "$v $t: no wrk figures in $f"
      r=$(jq '. + {bytes_moved_min: (.requests * 1024)}' <<< "$r") ;;  # the bodies alone
    iperf)
      in_pod "$pod" timeout "$lim" iperf3 -c "$ip" -p 5201 -t "$d" -J > "$f" 2>&1 || true
      # iperf3 may exit 0 with an "error" and no totals: only totals make a throughput
      if jq -e '.end.sum_received.bits_per_second' "$f" >/dev/null 2>&1; then
        # sent_bytes: what the client wrote; more than was received when the path buffers much
        r=$(jq '{gbit_s: (.end.sum_received.bits_per_second / 1e9), retransmits: (.end.sum_sent.retransmits // 0),
                 sent_bytes: .end.sum_sent.bytes, bytes_moved_min: .end.sum_received.bytes}' "$f")
      else
        # A failed transfer is a result too (the fast path's missing flow control ends a bulk send
        # through the agent with ENOMEM): recorded with iperf3's error, no throughput.
        r=$(jq '{gbit_s: null, error: (.error // "iperf3 failed"),
                 sent_bytes: ([.intervals[]?.sum.bytes] | add // 0), bytes_moved_min: 0}' "$f" 2>/dev/null) \
          || { tail -n 20 "$f" >&2; die "$v $t: iperf3 failed"; }
        log "WARNING $v $t: iperf3 failed: $(jq -r .error <<< "$r")"
      fi ;;
  esac
  after=$(snap)
  jq -n --argjson r "$r" --argjson c "$(delta "$before" "$after")" --arg v "$v" --argjson tck "$clk_tck" '
    $r + {counters: $c, meshd_cpu_s: ($c.meshd_ticks / $tck)}
    + (if $r.requests then {meshd_cpu_us_per_req: ($c.meshd_ticks / $tck * 1e6 / $r.requests)} else {} end)
    + {carried_as_claimed: (
         ($c.fp_bytes_n1 == 0 and $c.fp_bytes_n2 == 0) as $no_fast
         | ($c.out_streams == 0 and $c.in_streams == 0 and $c.captured == 0) as $no_tunnel
         | ($c.out_streams > 0 and $c.in_streams > 0) as $tunnel
         | if $v == "fastpath" then ($c.fp_bytes_n1 >= $r.bytes_moved_min and $c.fp_bytes_n2 == 0 and $no_tunnel)
           elif $v == "agent-on" then ($c.fp_bytes_n1 >= $r.bytes_moved_min and $c.fp_bytes_n2 >= $r.bytes_moved_min
                                       and $tunnel)
           elif $v == "agent-off" then ($no_fast and $tunnel)
           else ($no_fast and $no_tunnel) end)}'
}

# run_block on|off ROUND DURATION SAMPLES_FILE: every test of every variant of the block.
run_block() {
  local m=$1 round=$2 d=$3 file=$4 v t s vs
  set_mode "$m"
  case "$m" in
    on) vs=("${block_on[@]}") ;;
    hops) vs=("${block_hops[@]}") ;;
    *) vs=("${block_off[@]}") ;;
  esac
  for v in "${vs[@]}"; do
    for t in "${tests[@]}"; do
      s=$(measure "$v" "$t" "$d")
      jq -c -n --argjson s "$s" --arg v "$v" --arg t "$t" --arg m "$m" --argjson round "$round" \
        '{round: $round, variant: $v, mode: $m, test: $t} + $s' >> "$file"
      [ "$(jq -r .carried_as_claimed <<< "$s")" = true ] \
        || log "WARNING: round $round $v $t: traffic not carried as claimed: moved >= $(jq -c .bytes_moved_min <<< "$s"), counters $(jq -c .counters <<< "$s")"
    done
    log "round $round/$rounds $v: $(jq -r -s '
      def f(x): if x == null then "failed" else (x * 100 | round) / 100 end;
      map(select(.round == '"$round"' and .variant == "'"$v"'")) | map({key: .test, value: .}) | from_entries
      | "RTT 1K p50 \(f(.pingpong_1k.p50)) µs, RTT large p50 \(f(.pingpong_large.p50)) µs, \(.wrk_keepalive.rps | round) req/s, \(f(.iperf.gbit_s)) Gbit/s"' "$file")"
  done
}

# --- warm-up (not recorded) ------------------------------------------------------------------------
log "warm-up: every test of every variant for 1 s in both modes (not recorded)"
: > "$work/warmup.jsonl"
run_block on 0 1 "$work/warmup.jsonl"
run_block hops 0 1 "$work/warmup.jsonl"
run_block off 0 1 "$work/warmup.jsonl"

# --- rounds ----------------------------------------------------------------------------------------
# Each round starts in the mode the agents are in, "hops" always in the middle (so that a restart
# follows it): off hops on | on hops off | off hops on ...
: > "$work/samples.jsonl"
for round in $(seq "$rounds"); do
  first=$mode
  last=on; [ "$first" = on ] && last=off
  run_block "$first" "$round" "$duration" "$work/samples.jsonl"
  run_block hops "$round" "$duration" "$work/samples.jsonl"
  run_block "$last" "$round" "$duration" "$work/samples.jsonl"
done

# --- the fast path as the agents report it after the rounds (informational) -------------------------
reports='{}'
if [ "$fastpath_cmd" = yes ]; then
  reports=$(jq -n --argjson a "$(fp_report 1 || echo null)" --argjson b "$(fp_report 2 || echo null)" \
    '{n1: $a, n2: $b} | map_values(if . then del(.socketList) else . end)')
fi
mem() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
memory=$(jq -n --argjson r1 "$(mem "${meshd_pid[1]}" VmRSS)" --argjson r2 "$(mem "${meshd_pid[2]}" VmRSS)" \
  '{meshd_n1_rss_kib: $r1, meshd_n2_rss_kib: $r2}')

# --- result ----------------------------------------------------------------------------------------
busy_end=$(busy)
result=$(jq -s --argjson bs "$busy_start" --argjson be "$busy_end" --arg rev "$rev" --arg kernel "$(uname -r)" \
  --arg cpus "$(nproc)" --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
  --arg mem "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)" --arg host "$(uname -n)" \
  --argjson rounds "$rounds" --argjson duration "$duration" --argjson quick "$quick" \
  --argjson wt "$wrk_threads" --argjson wc "$wrk_conns" --argjson large "$large" \
  --argjson restarts "$restarts" --arg fpsrc "$fastpath_cmd" --argjson reports "$reports" --argjson memory "$memory" \
  --arg sockperf "$(sockperf --version 2>&1 | head -n1)" --arg wrk "$(wrk --version 2>&1 | head -n1 | cut -c1-40)" \
  --arg iperf "$(iperf3 --version | head -n1)" --arg nginx "$(nginx -v 2>&1)" --arg stamp "$(date -u +%Y%m%dT%H%M%SZ)" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def stat(f): [.[] | f | select(. != null)] | {median: median, min: min, max: max, values: .};
  def ratio(a; b): if a == null or b == null or b == 0 then null else a / b end;
  ["rtt_1k_p50_us", "rtt_1k_p99_us", "rtt_large_p50_us", "rtt_large_p99_us", "keepalive_rps", "bulk_gbit_s"] as $figs
  | . as $s
  | ([$s[] | .variant] | unique | map(. as $v | {key: $v, value: (
        [$s[] | select(.variant == $v)] as $vs
        | {rtt_1k_p50_us: ([$vs[] | select(.test == "pingpong_1k")] | stat(.p50)),
           rtt_1k_p99_us: ([$vs[] | select(.test == "pingpong_1k")] | stat(.p99)),
           rtt_large_p50_us: ([$vs[] | select(.test == "pingpong_large")] | stat(.p50)),
           rtt_large_p99_us: ([$vs[] | select(.test == "pingpong_large")] | stat(.p99)),
           keepalive_rps: ([$vs[] | select(.test == "wrk_keepalive")] | stat(.rps)),
           bulk_gbit_s: ([$vs[] | select(.test == "iperf")] | stat(.gbit_s)),
           bulk_sent_per_received: ([$vs[] | select(.test == "iperf")]
                                    | stat(if .bytes_moved_min > 0 then .sent_bytes / .bytes_moved_min else null end)),
           bulk_failed: ([$vs[] | select(.test == "iperf" and .error != null) | .error]),
           keepalive_meshd_cpu_us_per_req: ([$vs[] | select(.test == "wrk_keepalive")] | stat(.meshd_cpu_us_per_req)),
           bulk_meshd_cpu_s: ([$vs[] | select(.test == "iperf")] | stat(.meshd_cpu_s)),
           fastpath_fallbacks: ([$vs[] | .counters | to_entries[]
                                 | select(.key | test("^fp_(no_netns|map_full|peer_missing|peer_gone)_n[12]$"))]
                                | group_by(.key) | map({key: (.[0].key | ltrimstr("fp_")), value: (map(.value) | add)})
                                | from_entries),
           wrk_errors: ([$vs[] | select(.test == "wrk_keepalive") | .socket_errors + .non_2xx] | add),
           all_carried_as_claimed: ([$vs[] | .carried_as_claimed] | all)})}) | from_entries) as $sum
  # a pair of variants: the ratio of medians per figure, and whether `a`s median lies within `b`s
  # min-max (the issue: "within the spread of off")
  | def pair(a; b): $figs | map(. as $k | {key: $k, value: {
        ratio: ratio($sum[a][$k].median; $sum[b][$k].median),
        inside_spread: ($sum[a][$k].median >= $sum[b][$k].min and $sum[a][$k].median <= $sum[b][$k].max)}})
      | from_entries;
    def target(what; value; op; t): {what: what, value: value, target: "\(op) \(t)",
        met: (if value == null then false elif op == ">=" then value >= t else value <= t end)};
    (pair("fastpath"; "plain")) as $fp_plain
  | (pair("agent-on"; "agent-off")) as $agent
  | (pair("crossnode-on"; "crossnode-off")) as $cross
  | {bench: "fastpath", stamp: $stamp, git_rev: $rev, kernel: $kernel, quick: $quick,
     machine: {host: $host, cpu: $cpu, cpus: ($cpus | tonumber), mem_kib: ($mem | tonumber)},
     tools: {sockperf: $sockperf, wrk: $wrk, iperf3: $iperf, nginx: $nginx},
     config: {rounds: $rounds, duration_s: $duration, wrk_threads: $wt, wrk_connections: $wc,
              message_bytes: [1024, $large], http_body_bytes: 1024, meshd_restarts: $restarts,
              fast_path_state_from: (if $fpsrc == "yes" then "meshctl fastpath -o json" else "meshd start log (event=fastpath)" end),
              path_check_counters: "meshctl status -o json data-path counters fastpath_bytes (both nodes), tunnel streamsOpened, capturedAccepted",
              order: "per round three blocks, on (--fast-path on) = plain fastpath crossnode-on, hops (--fast-path on --fast-path-agent-hops on) = agent-on, off (--fast-path off) = samenode-off agent-off crossnode-off; a round starts with the agents current mode, hops always in the middle (on hops off | off hops on; two restarts of both meshd per round); per variant: pingpong_1k pingpong_large wrk_keepalive iperf",
              variants: {plain: "plainc -> plains on node 1, neither a Workload (the mesh ignores them; its hooks still run)",
                         fastpath: "client -> srv1 on node 1, both Workloads, meshd --fast-path on",
                         "samenode-off": "client -> srv1 on node 1, meshd --fast-path off",
                         "agent-on": "client (captured) on node 1 -> srv2 on node 2: app -> meshd -> mTLS tunnel -> meshd -> app, --fast-path on --fast-path-agent-hops on",
                         "agent-off": "the same, --fast-path off",
                         "crossnode-on": "direct (Workload, captured: false) on node 1 -> srv2 on node 2, plain routing, --fast-path on",
                         "crossnode-off": "the same, --fast-path off"}},
     others_running: {start: $bs, end: $be},
     all_carried_as_claimed: ([$s[].carried_as_claimed] | all),
     memory: $memory,
     summary: $sum,
     ratios: {to_plain: ([$sum | keys[] | select(. != "plain")] | map(. as $v | {key: $v, value: (
                 $figs | map(. as $k | {key: $k, value: ratio($sum[$v][$k].median; $sum.plain[$k].median)}) | from_entries)})
                 | from_entries),
              fastpath_vs_samenode_off: pair("fastpath"; "samenode-off"),
              agent_on_vs_off: $agent,
              crossnode_on_vs_off: $cross},
     bar: [target("same-node bulk, fastpath / plain"; $fp_plain.bulk_gbit_s.ratio; ">="; 1.5),
           target("same-node RTT p50 1 KB, fastpath / plain"; $fp_plain.rtt_1k_p50_us.ratio; "<="; 0.9),
           target("same-node RTT p50 \($large) B, fastpath / plain"; $fp_plain.rtt_large_p50_us.ratio; "<="; 0.9),
           {what: "cross-node, on within the spread (min-max) of off, every figure",
            value: ($cross | map_values(.inside_spread)), target: "all true",
            met: (if $rounds < 2 then null else ([$cross[].inside_spread] | all) end)}],
     goal: [target("same-node bulk, fastpath / plain"; $fp_plain.bulk_gbit_s.ratio; ">="; 2.5),
            target("same-node RTT p50 1 KB, fastpath / plain"; $fp_plain.rtt_1k_p50_us.ratio; "<="; 0.7),
            target("same-node RTT p50 \($large) B, fastpath / plain"; $fp_plain.rtt_large_p50_us.ratio; "<="; 0.7),
            target("app<->agent bulk, agent-on / agent-off"; $agent.bulk_gbit_s.ratio; ">="; 1.5)],
     fastpath_reports_after: $reports,
     samples: $s}' "$work/samples.jsonl")
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$result" > "$out"
  log "wrote $out"
fi

# --- tables ----------------------------------------------------------------------------------------
jq -r '
  def f(x): if x == null then "-" elif (x | fabs) >= 100 then (x | round | tostring) else ((x * 100 | round) / 100 | tostring) end;
  def cell(s): if s == null or s.median == null then "-" else "\(f(s.median)) (\(f(s.min))–\(f(s.max)))" end;
  def sp(p): if p.inside_spread then "" else " *" end;
  ["plain", "fastpath", "samenode-off", "agent-on", "agent-off", "crossnode-on", "crossnode-off"] as $vs
  | ["rtt_1k_p50_us", "rtt_1k_p99_us", "rtt_large_p50_us", "rtt_large_p99_us", "keepalive_rps", "bulk_gbit_s"] as $figs
  | .summary as $m | .ratios as $r
  | (if .quick then "SMOKE RUN (--quick): these numbers are not results", "" else empty end),
    "| figure | \($vs | join(" | ")) |",
    "|---|\($vs | map("---:") | join("|"))|",
    ($figs[] as $k | "| \($k) | \([$vs[] as $v | cell($m[$v][$k])] | join(" | ")) |"),
    "| meshd CPU µs/req keep-alive (both) | \([$vs[] as $v | cell($m[$v].keepalive_meshd_cpu_us_per_req)] | join(" | ")) |",
    "| bulk: bytes sent / received | \([$vs[] as $v | cell($m[$v].bulk_sent_per_received)] | join(" | ")) |",
    "| meshd CPU s during bulk (both) | \([$vs[] as $v | cell($m[$v].bulk_meshd_cpu_s)] | join(" | ")) |",
    "",
    "| figure | fastpath / plain | samenode-off / plain | fastpath / samenode-off | agent-on / agent-off | crossnode-on / crossnode-off |",
    "|---|---:|---:|---:|---:|---:|",
    ($figs[] as $k | "| \($k) | \(f($r.to_plain.fastpath[$k])) | \(f($r.to_plain["samenode-off"][$k])) | \(f($r.fastpath_vs_samenode_off[$k].ratio)) | \(f($r.agent_on_vs_off[$k].ratio)) | \(f($r.crossnode_on_vs_off[$k].ratio))\(sp($r.crossnode_on_vs_off[$k])) |"),
    "(* crossnode-on median outside crossnode-off min–max)",
    "",
    (.bar[] | "bar:  \(.what): \(if (.value | type) == "number" then f(.value) else (.value | tostring) end) (\(.target)) \(if .met == null then "n/a (one round has no spread)" elif .met then "met" else "MISSED" end)"),
    (.goal[] | "goal: \(.what): \(f(.value)) (\(.target)) \(if .met then "met" else "missed" end)"),
    "",
    "rounds: \(.config.rounds), \(.config.duration_s) s per sample, meshd restarts: \(.config.meshd_restarts); fast-path state from: \(.config.fast_path_state_from)",
    "fast-path fallbacks to TCP (reason_node: count, non-zero only): \($m | map_values(.fastpath_fallbacks | with_entries(select(.value > 0))) | with_entries(select(.value != {})) | tostring)",
    "others running (start, end): \(.others_running | tostring)",
    "all samples carried as claimed: \(.all_carried_as_claimed); wrk errors: \([$m[].wrk_errors // 0] | add)"
' <<< "$result"
ok=true
