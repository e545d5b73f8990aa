#!/usr/bin/env bash
# The telemetry cost benchmark (M6; bench/telemetry/README.md), run by run.sh after it built the
# release tree. A one-node lab: pod `client` and pod `server` (both captured Workloads), two
# Services whose only endpoint is the server pod, meshd in file mode. Two variants, differing only
# in meshd's telemetry flags (both with --metrics-address off):
#
#   off   --traffic-counters off --access-log-mode off
#   on    --traffic-counters on  --access-log-mode all --access-log <file>  (events at 100%)
#
# meshd is restarted for every sample (SIGTERM, then started with the variant's flags; the pinned
# data path is adopted). Rounds interleave the variants (off on off on ...); each sample measures
#   connect  a closed loop of socket()+connect()+close() (SO_LINGER 0) from the client pod to the
#            VIP 10.96.0.10:80 -> server:9000 (accept and close): connections/s   (telemetry_connect)
#   bulk     one iperf3 stream from the client pod to the VIP 10.96.0.11:5201: Gbit/s
# and checks that the variant did what it claims (on: the kernel counted the connections and the
# access log got lines; off: nothing counted, no log).
#
# Usage: telemetry_bench.sh --build DIR [--rounds N] [--connects N] [--warmup-connects N]
#                           [--bulk-seconds S] [--ring-bytes N] [--git-rev REV] [--out FILE]
set -euo pipefail

build="" rounds=5 connects=50000 warmup_connects=2000 bulk_s=10 ring_bytes="" rev=unknown out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connects) connects=$2; shift 2 ;;
    --warmup-connects) warmup_connects=$2; shift 2 ;;
    --bulk-seconds) bulk_s=$2; shift 2 ;;
    --ring-bytes) ring_bytes=$2; shift 2 ;;
    --git-rev) rev=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "telemetry_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$build" ] || { echo "telemetry_bench: --build DIR is required" >&2; exit 2; }
build=$(cd "$build" && pwd)
meshd=$build/agent/meshd meshctl=$build/cli/meshctl meshlab=$build/lab/meshlab
tconnect=$build/bench/telemetry/telemetry_connect
for bin in "$meshd" "$meshctl" "$meshlab" "$tconnect"; do
  [ -x "$bin" ] || { echo "telemetry_bench: $bin is missing (build it)" >&2; exit 1; }
done
"$meshd" --help | grep -q -- --traffic-counters \
  || { echo "telemetry_bench: $meshd has no --traffic-counters (rebuild the release tree)" >&2; exit 1; }

client_ip=10.78.1.10 server_ip=10.78.1.11
conn_vip=10.96.0.10 conn_port=80 conn_backend_port=9000
bulk_vip=10.96.0.11 bulk_port=5201
variants=(off on)

work=$(mktemp -d /tmp/sockmesh-telemetrybench-XXXXXX)
run="" meshd_pid="" ok=false
cleanup() {
  if [ -n "$meshd_pid" ]; then kill -TERM "$meshd_pid" 2>/dev/null || true; fi
  if [ -n "$run" ]; then "$meshlab" down "$run" >/dev/null || echo "telemetry_bench: meshlab down $run failed" >&2; fi
  if $ok; then rm -rf "$work"; else echo "telemetry_bench: logs kept in $work" >&2; fi
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
log "lab: 1 node; pods client ($client_ip) and server ($server_ip)"
"$meshlab" up --nodes 1 --owner-pid $$ --pod "client@1:$client_ip" --pod "server@1:$server_ip" > "$work/lab.txt"
run=$(sed -n 's/^RUN_ID=//p' "$work/lab.txt")
node="sm$run-n1"
cgroup=$(sed -n "s/^node 1 .*workload_cgroup=\([^ ]*\).*/\1/p" "$work/lab.txt")
in_pod() { local pod=$1; shift; "$meshlab" exec "$run" --pod "$pod" -- "$@"; }
bg_pod() { local pod=$1 name=$2; shift 2; "$meshlab" exec "$run" --pod "$pod" --background --log "$work/$name.log" -- "$@"; }

cat > "$work/mesh.yaml" <<EOF
apiVersion: sockmesh/v1
kind: Node
metadata: {name: $node}
spec: {addresses: [10.77.0.1]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {node: $node, serviceAccount: client, addresses: [$client_ip], cgroupPath: client}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {node: $node, serviceAccount: server, addresses: [$server_ip], cgroupPath: server}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: conn, namespace: bench}
spec:
  vips: [{address: $conn_vip, port: $conn_port}]
  endpoints: [{workload: server, port: $conn_backend_port}]
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: bulk, namespace: bench}
spec:
  vips: [{address: $bulk_vip, port: $bulk_port}]
  endpoints: [{workload: server, port: $bulk_port}]
EOF

log "servers in pod server: telemetry_connect serve :$conn_backend_port, iperf3 -s :$bulk_port"
bg_pod server accept-close "$tconnect" serve --port "$conn_backend_port" >/dev/null
bg_pod server iperf3-server iperf3 -s -p "$bulk_port" >/dev/null

# --- meshd per sample ------------------------------------------------------------------------------
flags_of() {
  case "$1" in
    off) echo "--traffic-counters off --access-log-mode off" ;;
    on) echo "--traffic-counters on --access-log-mode all --access-log $2${ring_bytes:+ --access-log-ring-bytes $ring_bytes}" ;;
  esac
}
status() { "$meshctl" --node "$node" status -o json; }
traffic() { "$meshctl" --node "$node" stats -o json 2>/dev/null || echo '{}'; }
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# start_meshd VARIANT ACCESS_LOG LOGFILE: sets meshd_pid, returns once the config is applied.
start_meshd() {
  local flags
  read -r -a flags <<< "$(flags_of "$1" "$2")"
  meshd_pid=$("$meshlab" exec "$run" --node 1 --background --log "$3" -- \
    "$meshd" --node "$node" --cgroup "$cgroup" --config "$work/mesh.yaml" --metrics-address off "${flags[@]}")
  local s
  for _ in $(seq 200); do
    s=$(status 2>/dev/null || true)
    if [ -n "$s" ] && jq -e --arg pid "$meshd_pid" \
         '(.pid | tostring) == $pid and (.config.services | tonumber) == 2 and (.config.lastError // "") == ""' \
         <<< "$s" >/dev/null 2>&1; then
      return 0
    fi
    alive "$meshd_pid" || { echo "telemetry_bench: meshd exited at start:" >&2; tail -n 20 "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "telemetry_bench: meshd ($1) did not apply the config in 20 s:" >&2
  tail -n 20 "$3" >&2
  exit 1
}
stop_meshd() {
  kill -TERM "$meshd_pid"
  for _ in $(seq 200); do alive "$meshd_pid" || { meshd_pid=""; return 0; }; sleep 0.05; done
  echo "telemetry_bench: meshd $meshd_pid did not stop in 10 s" >&2
  exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$meshd_pid/stat"; }
clk_tck=$(getconf CLK_TCK)

# A snapshot of what the variant claims: the kernel's connection counters and the access log's.
snap() {
  jq -n --argjson t "$(traffic)" --argjson ticks "$(ticks)" '
    def n(x): (x // 0 | tonumber);
    ($t.accessLog // $t.access_log // {}) as $a
    | {opened: ([$t.pairs // [] | .[] | n(.opened)] | add // 0),
       closed: ([$t.pairs // [] | .[] | n(.closed)] | add // 0),
       events_read: n($a.eventsRead // $a.events_read), events_lost: n($a.eventsLost // $a.events_lost),
       lines_written: n($a.linesWritten // $a.lines_written), write_errors: n($a.writeErrors // $a.write_errors),
       ring_bytes: n($a.ringBytes // $a.ring_bytes), meshd_ticks: $ticks}'
}
delta() { jq -n --argjson a "$1" --argjson b "$2" '$b | with_entries(.value -= ($a[.key] // 0)) | del(.ring_bytes)'; }

# sample VARIANT TAG CONNECTS BULK_SECONDS -> one JSON object
sample() {
  local v=$1 tag=$2 n=$3 secs=$4
  local alog="$work/access-$tag.log" s0 s1 s2 c b lines example
  rm -f "$alog"
  start_meshd "$v" "$alog" "$work/meshd-$tag.log"
  # The VIP answers before anything is timed.
  in_pod client "$tconnect" loop --target "$conn_vip:$conn_port" --connects 10 --warmup 0 > /dev/null \
    || { echo "telemetry_bench: $v: connects to $conn_vip:$conn_port fail" >&2; exit 1; }
  s0=$(snap)
  c=$(in_pod client "$tconnect" loop --target "$conn_vip:$conn_port" --connects "$n" --warmup "$warmup_connects") \
    || { echo "telemetry_bench: $v: connect loop failed: $c" >&2; exit 1; }
  s1=$(snap)
  in_pod client iperf3 -c "$bulk_vip" -p "$bulk_port" -t "$secs" -O 1 -J > "$work/iperf-$tag.json" 2>&1 \
    || { echo "telemetry_bench: $v: iperf3 failed:" >&2; tail -n 20 "$work/iperf-$tag.json" >&2; exit 1; }
  b=$(jq '{gbit_s: (.end.sum_received.bits_per_second / 1e9), retransmits: (.end.sum_sent.retransmits // 0),
           bytes: .end.sum_received.bytes}' "$work/iperf-$tag.json")
  s2=$(snap)
  stop_meshd
  # meshd has stopped: the log is complete.
  lines=0 example='[]'
  if [ -f "$alog" ]; then
    lines=$(wc -l < "$alog")
    example=$(head -n 2 "$alog" | jq -s -c . 2>/dev/null || echo '[]')
    rm -f "$alog"
  fi
  jq -n --argjson c "$c" --argjson b "$b" --argjson dc "$(delta "$s0" "$s1")" --argjson db "$(delta "$s1" "$s2")" \
    --argjson ring "$(jq .ring_bytes <<< "$s2")" \
    --argjson lines "$lines" --argjson ex "$example" --arg v "$v" --argjson tck "$clk_tck" \
    --argjson warm "$warmup_connects" '
    ($c.connects + $warm) as $all
    | {connect: ($c + {counters: $dc,
                        meshd_cpu_us_per_connect: ($dc.meshd_ticks / $tck * 1e6 / $all)}),
       bulk: ($b + {counters: $db, meshd_cpu_s: ($db.meshd_ticks / $tck)}),
       access_log_lines: $lines, access_log_example: $ex, ring_bytes: $ring,
       as_claimed: (if $v == "on"
                    then ($dc.opened >= $all and $dc.events_read > 0 and $lines > 0 and $db.opened >= 1)
                    else ($dc.opened == 0 and $db.opened == 0 and $lines == 0) end)}'
}

# --- warm-up (not recorded) ------------------------------------------------------------------------
log "warm-up: each variant once, $warmup_connects connects and 2 s of iperf3 (not recorded)"
for v in "${variants[@]}"; do sample "$v" "warmup-$v" "$warmup_connects" 2 > /dev/null; done

# --- rounds ----------------------------------------------------------------------------------------
: > "$work/samples.jsonl"
for round in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    s=$(sample "$v" "r$round-$v" "$connects" "$bulk_s")
    jq -c -n --argjson s "$s" --arg v "$v" --argjson round "$round" '{round: $round, variant: $v} + $s' \
      >> "$work/samples.jsonl"
    [ "$(jq -r .as_claimed <<< "$s")" = true ] \
      || log "WARNING: round $round $v: telemetry not as claimed: $(jq -c '{c: .connect.counters, lines: .access_log_lines}' <<< "$s")"
    log "round $round/$rounds $v: $(jq -r '"\(.connect.rate_per_s | round) conn/s, \(.bulk.gbit_s * 100 | round / 100) Gbit/s, \(.access_log_lines) log lines"' <<< "$s")"
  done
done

# --- result ----------------------------------------------------------------------------------------
busy_end=$(busy)
result=$(jq -s --argjson bs "$busy_start" --argjson be "$busy_end" --arg rev "$rev" --arg kernel "$(uname -r)" \
  --arg cpus "$(nproc)" --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
  --arg mem "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)" --arg host "$(uname -n)" \
  --argjson rounds "$rounds" --argjson n "$connects" --argjson warm "$warmup_connects" --argjson bulk "$bulk_s" \
  --arg ring "$ring_bytes" --arg logfs "$(stat -f -c %T "$work")" --arg iperf "$(iperf3 --version | head -n1)" --arg stamp "$(date -u +%Y%m%dT%H%M%SZ)" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                     else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def stat(f): [.[] | f] | {median: median, min: min, max: max, values: .};
  # on/off of medians; "inside the spread" when either median lies within the other variant min-max.
  def compare(off; on; goal_pct; higher_is_better):
    (on.median / off.median) as $r
    | {ratio_on_off: $r,
       cost_pct: (if higher_is_better then (1 - $r) * 100 else ($r - 1) * 100 end),
       spread_pct: {off: ((off.max - off.min) / off.median * 100), on: ((on.max - on.min) / on.median * 100)},
       inside_spread: ((on.median >= off.min and on.median <= off.max) or (off.median >= on.min and off.median <= on.max)),
       goal_pct: goal_pct,
       meets_goal: ((if higher_is_better then (1 - $r) * 100 else ($r - 1) * 100 end) <= goal_pct)};
  . as $s
  | ([$s[] | .variant] | unique | map(. as $v | {key: $v, value: (
        [$s[] | select(.variant == $v)]
        | {connect_per_s: stat(.connect.rate_per_s),
           connect_p50_us: stat(.connect.p50_us),
           connect_p99_us: stat(.connect.p99_us),
           bulk_gbit_s: stat(.bulk.gbit_s),
           meshd_cpu_us_per_connect: stat(.connect.meshd_cpu_us_per_connect),
           meshd_cpu_s_during_bulk: stat(.bulk.meshd_cpu_s),
           access_log_lines_per_connect: stat(.access_log_lines / (.connect.connects + $warm)),
           events_lost: ([.[] | .connect.counters.events_lost + .bulk.counters.events_lost] | add),
           connect_failures: ([.[] | .connect.failures] | add)})}) | from_entries) as $sum
  | {bench: "telemetry", stamp: $stamp, git_rev: $rev, kernel: $kernel,
     machine: {host: $host, cpu: $cpu, cpus: ($cpus | tonumber), mem_kib: ($mem | tonumber)},
     tools: {iperf3: $iperf},
     config: {rounds: $rounds, connects: $n, warmup_connects: $warm, bulk_seconds: $bulk, bulk_omit_seconds: 1,
              ring_bytes: (if $ring == "" then "meshd default" else ($ring | tonumber) end),
              access_log_filesystem: $logfs,
              order: "off on per round, meshd restarted for every sample",
              connect_workload: "closed loop socket()+connect()+close() with SO_LINGER {1,0} (RST, no TIME_WAIT), one thread, client pod -> VIP -> server pod that accepts and closes; rate = connects / wall time",
              bulk_workload: "iperf3 -t bulk_seconds -O 1, one stream, client pod -> VIP -> server pod",
              variants: {off: "meshd --traffic-counters off --access-log-mode off --metrics-address off",
                         on: "meshd --traffic-counters on --access-log-mode all --access-log FILE --metrics-address off"}},
     others_running: {start: $bs, end: $be},
     all_as_claimed: ([$s[].as_claimed] | all),
     summary: $sum,
     comparison: {connect_per_s: compare($sum.off.connect_per_s; $sum.on.connect_per_s; 5; true),
                  bulk_gbit_s: compare($sum.off.bulk_gbit_s; $sum.on.bulk_gbit_s; 2; true),
                  connect_p50_us: compare($sum.off.connect_p50_us; $sum.on.connect_p50_us; null; false)},
     samples: $s}' "$work/samples.jsonl")
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$result" > "$out"
  log "wrote $out"
fi

# --- table -----------------------------------------------------------------------------------------
jq -r '
  def f(x): if x == null then "-" elif (x | fabs) >= 100 then (x | round | tostring) else ((x * 100 | round) / 100 | tostring) end;
  def cell(s): "\(f(s.median)) (\(f(s.min))–\(f(s.max)))";
  def verdict(c): if c.inside_spread then "no measurable cost (inside the spread)"
                  elif c.goal_pct == null then "-"
                  elif c.meets_goal then "meets the goal" else "misses the goal" end;
  .summary as $m | .comparison as $c
  | "| figure | telemetry off | telemetry on | on / off | cost | goal | spread off / on | verdict |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    (["connect_per_s", "bulk_gbit_s", "connect_p50_us"][] as $k
     | "| \($k) | \(cell($m.off[$k])) | \(cell($m.on[$k])) | \(f($c[$k].ratio_on_off)) | \(f($c[$k].cost_pct)) % | \(if $c[$k].goal_pct then "≤ \($c[$k].goal_pct) %" else "-" end) | \(f($c[$k].spread_pct.off)) % / \(f($c[$k].spread_pct.on)) % | \(verdict($c[$k])) |"),
    "| connect_p99_us | \(cell($m.off.connect_p99_us)) | \(cell($m.on.connect_p99_us)) | \(f($m.on.connect_p99_us.median / $m.off.connect_p99_us.median)) | | | | |",
    "| meshd CPU µs per connect | \(cell($m.off.meshd_cpu_us_per_connect)) | \(cell($m.on.meshd_cpu_us_per_connect)) | | | | | |",
    "| meshd CPU s during bulk | \(cell($m.off.meshd_cpu_s_during_bulk)) | \(cell($m.on.meshd_cpu_s_during_bulk)) | | | | | |",
    "| access-log lines per connect | \(cell($m.off.access_log_lines_per_connect)) | \(cell($m.on.access_log_lines_per_connect)) | | | | | |",
    "",
    "rounds: \(.config.rounds), connects per sample: \(.config.connects), bulk: \(.config.bulk_seconds) s; events lost (on): \($m.on.events_lost); connect failures: \($m.off.connect_failures + $m.on.connect_failures)",
    "others running (start, end): \(.others_running | tostring)",
    "all samples as claimed: \(.all_as_claimed)"
' <<< "$result"
ok=true
