#!/usr/bin/env bash
# The cross-node mTLS benchmark (docs/benchmarks.md "mesh: cross-node mTLS"), run by run.sh after it
# built the release tree. A two-node lab; servers (sockperf, nginx, iperf3, and the pair's server
# haproxy) in the pod `server` on node 2; three client pods on node 1, one per variant:
#
#   no-mesh   pod plain    a Workload with captured: false (same lab, same agents running)
#   sockmesh  pod client   a captured Workload: cross-node connects go through the agents' tunnel
#   haproxy   pod sidecar  captured: false; iptables REDIRECT to a local haproxy that originates
#                          mutual TLS 1.3 to the server pod's haproxy (bench/mesh/*.in)
#
# Variants interleaved (A B C A B C ...), every figure measured in each; every sample checks that
# its traffic went the way the variant claims (tunnel streams, haproxy sessions, neither).
#
# Usage: mesh_bench.sh --build DIR [--rounds N] [--duration S] [--wrk-threads N] [--wrk-connections N]
#                      [--git-rev REV] [--out FILE] [--profile-dir DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

build="" rounds=5 duration=5 wrk_threads=2 wrk_conns=16 rev=unknown out="" profile_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --wrk-connections) wrk_conns=$2; shift 2 ;;
    --git-rev) rev=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --profile-dir) profile_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "mesh_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$build" ] || { echo "mesh_bench: --build DIR is required" >&2; exit 2; }
build=$(cd "$build" && pwd)
meshd=$build/agent/meshd meshctl=$build/cli/meshctl meshlab=$build/lab/meshlab meshcp=$build/controlplane/meshcp
server_ip=10.78.2.10
variants=(no-mesh sockmesh haproxy)
declare -A pod_of=([no-mesh]=plain [sockmesh]=client [haproxy]=sidecar)

work=$(mktemp -d /tmp/sockmesh-meshbench-XXXXXX)
run=""
ok=false
cleanup() {
  if [ -n "$run" ]; then "$meshlab" down "$run" >/dev/null || echo "mesh_bench: meshlab down $run failed" >&2; fi
  if $ok; then rm -rf "$work"; else echo "mesh_bench: logs kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Whether others ran (a build, a lab test) at the start and end of the run: recorded, never ignored.
busy() { jq -n --argjson cc "$(pgrep -fc cc1plus || true)" --argjson lab "$(pgrep -fc lb_lab_test || true)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '{cc1plus: $cc, lb_lab_test: $lab, loadavg: $load}'; }
busy_start=$(busy)

# --- lab -------------------------------------------------------------------------------------------
log "lab: 2 nodes; client, plain, sidecar on node 1; server on node 2"
"$meshlab" up --nodes 2 --owner-pid $$ --pod client@1:10.78.1.10 --pod plain@1:10.78.1.11 \
  --pod sidecar@1:10.78.1.12 --pod server@2:$server_ip > "$work/lab.txt"
run=$(sed -n 's/^RUN_ID=//p' "$work/lab.txt")
node_name() { echo "sm$run-n$1"; }
workload_cgroup() { sed -n "s/^node $1 .*workload_cgroup=\([^ ]*\).*/\1/p" "$work/lab.txt"; }
in_pod() { local pod=$1; shift; "$meshlab" exec "$run" --pod "$pod" -- "$@"; }
bg_pod() { local pod=$1 name=$2; shift 2; "$meshlab" exec "$run" --pod "$pod" --background --log "$work/$name.log" -- "$@"; }

# --- certificates for the haproxy pair (ECDSA P-256 like sockmesh's SVIDs) ------------------------
log "certificates for the haproxy pair"
(
  cd "$work"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.pem 2>/dev/null
  for who in server client; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$who.key" 2>/dev/null
    openssl req -new -key "$who.key" -subj "/CN=$who" -out "$who.csr" 2>/dev/null
    usage=serverAuth; [ "$who" = client ] && usage=clientAuth
    printf 'subjectAltName=DNS:%s,URI:spiffe://bench/ns/demo/sa/%s\nextendedKeyUsage=%s\n' "$who" "$who" "$usage" > "$who.ext"
    openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$who.ext" \
      -out "$who.crt" 2>/dev/null
    cat "$who.crt" "$who.key" > "$who.pem"
  done
)
for f in haproxy-client.cfg haproxy-server.cfg iptables-client.rules nginx.conf; do
  sed -e "s|@DIR@|$work|g" -e "s|@SERVER_IP@|$server_ip|g" "$here/$f.in" > "$work/$f"
done
mkdir -p "$work/www" "$work/nginx-tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k"

# --- servers (node 2) and the pair's client side (node 1) ------------------------------------------
log "servers in pod server; haproxy + iptables in pod sidecar"
bg_pod server sockperf-server sockperf server --tcp -p 11111 >/dev/null
bg_pod server nginx nginx -c "$work/nginx.conf" >/dev/null
bg_pod server iperf3-server iperf3 -s -p 5201 >/dev/null
hap_server=$(bg_pod server haproxy-server haproxy -db -f "$work/haproxy-server.cfg")
hap_client=$(bg_pod sidecar haproxy-client haproxy -db -f "$work/haproxy-client.cfg")
in_pod sidecar iptables-restore "$work/iptables-client.rules"

# --- control plane and agents ----------------------------------------------------------------------
log "meshcp on node 1, meshd on both nodes (joined with meshctl node add)"
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
  for spec in client:1:10.78.1.10:true plain:1:10.78.1.11:false sidecar:1:10.78.1.12:false server:2:$server_ip:true; do
    IFS=: read -r pod n ip cap <<< "$spec"
    printf 'apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: %s, namespace: demo, labels: {app: %s}}\n' "$pod" "$pod"
    printf 'spec: {node: %s, serviceAccount: %s, addresses: [%s], cgroupPath: %s, captured: %s}\n---\n' \
      "$(node_name "$n")" "$pod" "$ip" "$pod" "$cap"
  done
} > "$work/mesh.yaml"
mctl apply -f "$work/mesh.yaml" >/dev/null
declare -A meshd_pid
for n in 1 2; do
  mctl node add "$(node_name $n)" > "$work/join-n$n.txt"
  token=$(grep -o 'smt1\.[0-9a-f.]*' "$work/join-n$n.txt")
  ca_hash=$(grep -o 'sha256:[0-9a-f]*' "$work/join-n$n.txt")
  meshd_pid[$n]=$("$meshlab" exec "$run" --node "$n" --background --log "$work/meshd-n$n.log" -- \
    "$meshd" --node "$(node_name $n)" --cgroup "$(workload_cgroup $n)" --controlplane "$xds" \
    --state-dir "$work/state-n$n" --join-token "$token" --ca-cert-hash "$ca_hash")
done
status() { "$meshctl" --node "$(node_name "$1")" status -o json; }
svids() { status "$1" 2>/dev/null | jq '.mesh.svids // [] | length' 2>/dev/null || echo 0; }
for _ in $(seq 300); do
  [ "$(svids 1)" -ge 3 ] && [ "$(svids 2)" -ge 1 ] && break
  sleep 0.1
done
[ "$(svids 1)" -ge 3 ] && [ "$(svids 2)" -ge 1 ] || { echo "mesh_bench: agents have no SVIDs" >&2; exit 1; }

# Every variant reaches every server.
for v in "${variants[@]}"; do
  for _ in $(seq 100); do
    in_pod "${pod_of[$v]}" curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$server_ip:8080/1k" 2>/dev/null \
      | grep -q 200 && break
    sleep 0.1
  done
  code=$(in_pod "${pod_of[$v]}" curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$server_ip:8080/1k" || true)
  [ "$code" = 200 ] || { echo "mesh_bench: $v cannot reach nginx ($code)" >&2; exit 1; }
done
log "all variants reach the servers"

# --- counters --------------------------------------------------------------------------------------
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hap_sessions() {  # total sessions accepted by the frontends of one haproxy
  echo "show stat" | socat stdio "UNIX-CONNECT:$work/haproxy-$1.sock" | awk -F, '$2 == "FRONTEND" {s += $8} END {print s + 0}'
}
# snap: one JSON object with everything a sample compares before and after.
snap() {
  local s1 s2
  s1=$(status 1) s2=$(status 2)
  jq -n --argjson s1 "$s1" --argjson s2 "$s2" \
    --argjson m1 "$(ticks "${meshd_pid[1]}")" --argjson m2 "$(ticks "${meshd_pid[2]}")" \
    --argjson hc "$(ticks "$hap_client")" --argjson hs "$(ticks "$hap_server")" \
    --argjson hcs "$(hap_sessions client)" --argjson hss "$(hap_sessions server)" '
    def n(x): (x // 0 | tonumber);
    {out_streams: n($s1.mesh.outbound.streamsOpened), in_streams: n($s2.mesh.inbound.streamsOpened),
     out_bytes: n($s1.mesh.outbound.bytesToTunnel), captured: n($s1.mesh.capturedAccepted),
     hap_client_sessions: $hcs, hap_server_sessions: $hss,
     meshd_ticks: ($m1 + $m2), haproxy_ticks: ($hc + $hs)}'
}
delta() { jq -n --argjson a "$1" --argjson b "$2" '$b | with_entries(.value -= $a[.key])'; }
clk_tck=$(getconf CLK_TCK)

# --- one test ----------------------------------------------------------------------------------------
pct() { awk -v p="$2" '$0 ~ "percentile " p " =" {print $NF} ' "$1"; }
sockperf_json() {  # file -> {p50,p99,p999,avg,observations} in µs (full RTT)
  jq -n --arg p50 "$(pct "$1" 50.000)" --arg p99 "$(pct "$1" 99.000)" --arg p999 "$(pct "$1" 99.900)" \
    --arg obs "$(sed -n 's/.*Total \([0-9]*\) observations.*/\1/p' "$1" | head -n1)" \
    '{p50: ($p50|tonumber), p99: ($p99|tonumber), p999: ($p999|tonumber), observations: ($obs|tonumber)}'
}
wrk_json() {
  local reqs rps errs non2xx
  reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1")
  errs=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1" \
    | awk '{print $1 + $2 + $3 + $4}')
  non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1")
  jq -n --argjson r "${reqs:-0}" --argjson rps "${rps:-0}" --argjson e "${errs:-0}" --argjson x "${non2xx:-0}" \
    '{requests: $r, rps: $rps, socket_errors: $e, non_2xx: $x}'
}
# measure VARIANT TEST DURATION -> JSON of the test's figures plus the counter deltas
measure() {
  local v=$1 t=$2 d=$3 pod=${pod_of[$1]} f="$work/out-$1-$2.txt" before after r
  before=$(snap)
  case "$t" in
    pingpong) in_pod "$pod" sockperf ping-pong --tcp --full-rtt -i "$server_ip" -p 11111 -m 1024 -t "$d" > "$f" 2>&1
              r=$(sockperf_json "$f") ;;
    underload) in_pod "$pod" sockperf under-load --tcp --full-rtt -i "$server_ip" -p 11111 -m 1024 --mps 1000 \
                 --reply-every 1 -t "$d" > "$f" 2>&1
               r=$(sockperf_json "$f") ;;
    wrk_keepalive) in_pod "$pod" wrk -t "$wrk_threads" -c "$wrk_conns" -d "${d}s" "http://$server_ip:8080/1k" > "$f" 2>&1
                   r=$(wrk_json "$f") ;;
    wrk_churn) in_pod "$pod" wrk -t "$wrk_threads" -c "$wrk_conns" -d "${d}s" -H "Connection: close" \
                 "http://$server_ip:8080/1k" > "$f" 2>&1
               r=$(wrk_json "$f") ;;
    iperf) in_pod "$pod" iperf3 -c "$server_ip" -p 5201 -t "$d" -J > "$f" 2>&1
           r=$(jq '{gbit_s: (.end.sum_received.bits_per_second / 1e9), retransmits: (.end.sum_sent.retransmits // 0)}' "$f") ;;
  esac
  after=$(snap)
  jq -n --argjson r "$r" --argjson c "$(delta "$before" "$after")" --arg v "$v" --argjson tck "$clk_tck" '
    $r + {counters: $c}
    + (if $r.requests then
         {meshd_cpu_us_per_req: ($c.meshd_ticks / $tck * 1e6 / $r.requests),
          haproxy_cpu_us_per_req: ($c.haproxy_ticks / $tck * 1e6 / $r.requests)} else {} end)
    + {carried_as_claimed: (
         if $v == "sockmesh" then ($c.out_streams > 0 and $c.in_streams > 0
                                  and $c.hap_client_sessions == 0 and $c.hap_server_sessions == 0)
         elif $v == "haproxy" then ($c.hap_client_sessions > 0 and $c.hap_server_sessions > 0
                                  and $c.out_streams == 0 and $c.in_streams == 0 and $c.captured == 0)
         else ($c.out_streams == 0 and $c.in_streams == 0 and $c.captured == 0
               and $c.hap_client_sessions == 0 and $c.hap_server_sessions == 0) end)}'
}
tests=(pingpong underload wrk_keepalive wrk_churn iperf)

# --- warm-up (not recorded) ------------------------------------------------------------------------
log "warm-up: every test of every variant for 1 s (not recorded)"
for v in "${variants[@]}"; do for t in "${tests[@]}"; do measure "$v" "$t" 1 >/dev/null; done; done

# --- rounds ----------------------------------------------------------------------------------------
: > "$work/samples.jsonl"
for round in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    for t in "${tests[@]}"; do
      s=$(measure "$v" "$t" "$duration")
      jq -c -n --argjson s "$s" --arg v "$v" --arg t "$t" --argjson round "$round" \
        '{round: $round, variant: $v, test: $t} + $s' >> "$work/samples.jsonl"
      ok_flag=$(jq -r .carried_as_claimed <<< "$s")
      [ "$ok_flag" = true ] || log "WARNING: round $round $v $t: traffic not carried as claimed: $(jq -c .counters <<< "$s")"
    done
    log "round $round/$rounds $v done"
  done
done

# --- memory ----------------------------------------------------------------------------------------
mem() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
memory=$(jq -n --argjson r1 "$(mem "${meshd_pid[1]}" VmRSS)" --argjson h1 "$(mem "${meshd_pid[1]}" VmHWM)" \
  --argjson r2 "$(mem "${meshd_pid[2]}" VmRSS)" --argjson h2 "$(mem "${meshd_pid[2]}" VmHWM)" \
  --argjson rc "$(mem "$hap_client" VmRSS)" --argjson rs "$(mem "$hap_server" VmRSS)" \
  '{meshd_n1_rss_kib: $r1, meshd_n1_hwm_kib: $h1, meshd_n2_rss_kib: $r2, meshd_n2_hwm_kib: $h2,
    haproxy_client_rss_kib: $rc, haproxy_server_rss_kib: $rs}')

# --- profile (optional, after the recorded rounds, not part of the samples) --------------------------
if [ -n "$profile_dir" ]; then
  mkdir -p "$profile_dir"
  for t in wrk_keepalive wrk_churn iperf pingpong; do
    log "profile: sockmesh $t with perf record on meshd n1 and n2"
    for n in 1 2; do
      perf record -F 499 --call-graph dwarf,16384 -p "${meshd_pid[$n]}" -o "$profile_dir/$t-n$n.data" \
        -- sleep "$duration" > /dev/null 2>&1 &
      perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p "${meshd_pid[$n]}" \
        -o "$profile_dir/$t-n$n.stat.csv" -- sleep "$duration" > /dev/null 2>&1 &
    done
    sleep 0.5
    measure sockmesh "$t" "$duration" > "$profile_dir/$t.json"
    wait
    for n in 1 2; do
      perf report -i "$profile_dir/$t-n$n.data" --no-children --stdio --percent-limit 1.5 -g none \
        > "$profile_dir/$t-n$n.flat.txt" 2>/dev/null || true
      perf report -i "$profile_dir/$t-n$n.data" --children --stdio --percent-limit 5 -g none \
        > "$profile_dir/$t-n$n.children.txt" 2>/dev/null || true
    done
  done
fi

# --- result ----------------------------------------------------------------------------------------
busy_end=$(busy)
result=$(jq -s --argjson bs "$busy_start" --argjson be "$busy_end" --arg rev "$rev" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" --argjson rounds "$rounds" \
  --argjson duration "$duration" --argjson wt "$wrk_threads" --argjson wc "$wrk_conns" --argjson mem "$memory" \
  --arg haproxy "$(haproxy -v | head -n1)" --arg nginx "$(nginx -v 2>&1)" --arg stamp "$(date -u +%Y%m%dT%H%M%SZ)" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def stat(f): [.[] | f] | {median: median, min: min, max: max};
  . as $s
  | {bench: "mesh", stamp: $stamp, git_rev: $rev, kernel: $kernel, cpus: ($cpus | tonumber),
     tools: {haproxy: $haproxy, nginx: $nginx},
     config: {rounds: $rounds, duration_s: $duration, wrk_threads: $wt, wrk_connections: $wc,
              message_bytes: 1024, http_body_bytes: 1024, underload_mps: 1000,
              variants: {"no-mesh": "pod plain, Workload captured: false (agents running)",
                         sockmesh: "pod client, captured Workload: the agents mTLS tunnel",
                         haproxy: "pod sidecar, iptables REDIRECT to haproxy, mTLS to haproxy in the server pod"}},
     others_running: {start: $bs, end: $be},
     all_carried_as_claimed: ([$s[].carried_as_claimed] | all),
     memory: $mem,
     summary: ([$s[] | .variant] | unique | map(. as $v | {key: $v, value: (
        [$s[] | select(.variant == $v)] as $vs
        | {rtt_p50_us: ([$vs[] | select(.test == "pingpong")] | stat(.p50)),
           rtt_p99_us: ([$vs[] | select(.test == "pingpong")] | stat(.p99)),
           rtt_p999_us: ([$vs[] | select(.test == "pingpong")] | stat(.p999)),
           underload_p50_us: ([$vs[] | select(.test == "underload")] | stat(.p50)),
           underload_p99_us: ([$vs[] | select(.test == "underload")] | stat(.p99)),
           underload_p999_us: ([$vs[] | select(.test == "underload")] | stat(.p999)),
           keepalive_rps: ([$vs[] | select(.test == "wrk_keepalive")] | stat(.rps)),
           churn_rps: ([$vs[] | select(.test == "wrk_churn")] | stat(.rps)),
           bulk_gbit_s: ([$vs[] | select(.test == "iperf")] | stat(.gbit_s)),
           keepalive_meshd_cpu_us_per_req: ([$vs[] | select(.test == "wrk_keepalive")] | stat(.meshd_cpu_us_per_req)),
           keepalive_haproxy_cpu_us_per_req: ([$vs[] | select(.test == "wrk_keepalive")] | stat(.haproxy_cpu_us_per_req)),
           churn_meshd_cpu_us_per_req: ([$vs[] | select(.test == "wrk_churn")] | stat(.meshd_cpu_us_per_req)),
           churn_haproxy_cpu_us_per_req: ([$vs[] | select(.test == "wrk_churn")] | stat(.haproxy_cpu_us_per_req)),
           wrk_errors: ([$vs[] | select(.test | startswith("wrk")) | .socket_errors + .non_2xx] | add)})}) | from_entries),
     samples: $s}' "$work/samples.jsonl")
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$result" > "$out"
  log "wrote $out"
fi

# --- tables ------------------------------------------------------------------------------------------
jq -r '
  def f(x): if x == null then "-" elif x >= 100 then (x | round | tostring) else ((x * 100 | round) / 100 | tostring) end;
  def cell(s): "\(f(s.median)) (\(f(s.min))–\(f(s.max)))";
  .summary as $m
  | "| figure | no mesh | sockmesh | haproxy pair | sockmesh / no mesh | haproxy / no mesh | sockmesh / haproxy |",
    "|---|---:|---:|---:|---:|---:|---:|",
    (["rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "underload_p50_us", "underload_p99_us", "underload_p999_us",
      "keepalive_rps", "churn_rps", "bulk_gbit_s"][] as $k
     | "| \($k) | \(cell($m["no-mesh"][$k])) | \(cell($m.sockmesh[$k])) | \(cell($m.haproxy[$k])) | \(f($m.sockmesh[$k].median / $m["no-mesh"][$k].median)) | \(f($m.haproxy[$k].median / $m["no-mesh"][$k].median)) | \(f($m.sockmesh[$k].median / $m.haproxy[$k].median)) |"),
    "| CPU µs/req keep-alive (mesh processes) | - | \(cell($m.sockmesh.keepalive_meshd_cpu_us_per_req)) | \(cell($m.haproxy.keepalive_haproxy_cpu_us_per_req)) | | | \(f($m.sockmesh.keepalive_meshd_cpu_us_per_req.median / $m.haproxy.keepalive_haproxy_cpu_us_per_req.median)) |",
    "| CPU µs/req churn (mesh processes) | - | \(cell($m.sockmesh.churn_meshd_cpu_us_per_req)) | \(cell($m.haproxy.churn_haproxy_cpu_us_per_req)) | | | \(f($m.sockmesh.churn_meshd_cpu_us_per_req.median / $m.haproxy.churn_haproxy_cpu_us_per_req.median)) |",
    "",
    "memory (KiB): \(.memory | tostring)",
    "others running (start, end): \(.others_running | tostring)",
    "all samples carried as claimed: \(.all_carried_as_claimed); wrk errors: \([.summary[].wrk_errors] | add)"
' <<< "$result"
ok=true
