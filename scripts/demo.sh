#!/usr/bin/env bash
# The sockmesh demo: a two-node lab run by the control plane. meshcp holds the desired state; one
# meshd per node receives it over the discovery push stream and programs its kernel. A client pod
# and a three-replica web service spread over both nodes, split 80/20 between its v1 and v2 subsets
# by the kernel at connect(). Unmodified clients (curl, socat) connect to the service's IPv4 and
# IPv6 VIPs, query a UDP service on both families (replies appear to come from the VIP) and a
# Maglev service (the client sticks to one replica); the demo prints what it observed and what
# meshctl shows, changes the split with `meshctl apply` (every agent ACKs it, no restart). Nodes
# join with one-time tokens; connections between pods on different nodes cross over mutual TLS
# between the agents (the client's SPIFFE ID shows in the receiving agent's log); an
# AuthorizationPolicy then lets only the client's identity reach web and an intruder is refused,
# by the tunnel's inbound agent and by the kernel on its own node. Node 2 joins as the Helm chart's
# DaemonSet does (cluster bootstrap token and CA certificate from files) and both agents answer
# the chart's health probes. Finally it stops meshcp to show traffic keeps flowing on the last good
# state (the agents stay live, no longer ready), and tears everything down.
#
#   scripts/demo.sh            full run (1000 connections)
#   scripts/demo.sh --short    quick run for CI (200 connections); exits non-zero when the
#                              observed split is off by more than 5 sigma
# SOCKMESH_BUILD_DIR=DIR uses binaries already built there instead of building build/release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

connections=1000
case "${1:-}" in
  --short) connections=200 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--short]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: needs root (BPF programs, network namespaces, cgroups)" >&2
  exit 1
fi

if [ -n "${SOCKMESH_BUILD_DIR:-}" ]; then
  build=$SOCKMESH_BUILD_DIR
else
  scripts/install-deps.sh
  build=$(scripts/build.sh release | tail -n 1)
fi
build=$(cd "$build" && pwd)
meshd=$build/agent/meshd
meshctl=$build/cli/meshctl
meshlab=$build/lab/meshlab
meshcp=$build/controlplane/meshcp

work=$(mktemp -d /tmp/sockmesh-demo-XXXXXX)
run=""
meshcp_pid=""
stop_meshcp() {
  if [ -n "$meshcp_pid" ]; then
    kill "$meshcp_pid" 2>/dev/null || true
    wait "$meshcp_pid" 2>/dev/null || true
    meshcp_pid=""
  fi
}
cleanup() {
  stop_meshcp
  if [ -n "$run" ]; then "$meshlab" down "$run" >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n== %s\n' "$*"; }

step "Lab: 2 nodes, a client pod and web-v1-a (n1), web-v1-b (n2), web-v2-a (n2)"
"$meshlab" up --nodes 2 --owner-pid $$ \
  --pod client@1:10.78.1.20 --pod web-v1-a@1:10.78.1.10 \
  --pod web-v1-b@2:10.78.2.10 --pod web-v2-a@2:10.78.2.11 --pod intruder@2:10.78.2.20 \
  | tee "$work/lab.txt"
run=$(sed -n 's/^RUN_ID=//p' "$work/lab.txt")
node_name() { echo "sm$run-n$1"; }
workload_cgroup() { sed -n "s/^node $1 .*workload_cgroup=\([^ ]*\).*/\1/p" "$work/lab.txt"; }
node_address() { sed -n "s/^node $1 .* address=\([^ ]*\).*/\1/p" "$work/lab.txt"; }

for pod in web-v1-a web-v1-b web-v2-a; do
  "$meshlab" exec "$run" --pod "$pod" --background --log "$work/$pod.log" -- \
    "$meshlab" echo-server --port 8080 --name "$pod" >/dev/null
done

step "Control plane: meshcp, its store in a temporary state directory"
api=$work/meshcp/api.sock
xds=unix:$work/meshcp/xds.sock
# meshcp runs in the host's network namespace: a free loopback port for its metrics, so that it never
# collides with another meshcp (or anything else) on 15014. It also takes a cluster bootstrap token,
# as the Helm chart gives it from a Secret (docs/install.md): 48 random characters in a file.
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/bootstrap-token"
chmod 0600 "$work/bootstrap-token"
"$meshcp" --state-dir "$work/meshcp/state" --listen "$xds" --api-socket "$api" \
  --bootstrap-token-file "$work/bootstrap-token" \
  --metrics-address 127.0.0.1:0 >"$work/meshcp.log" 2>&1 &
meshcp_pid=$!
mctl() { "$meshctl" --controlplane "$api" "$@"; }
for _ in $(seq 100); do
  mctl cp status >/dev/null 2>&1 && break
  sleep 0.1
done
mctl cp status >/dev/null || { cat "$work/meshcp.log" >&2; exit 1; }
echo "meshcp serving agents on $xds"

step "meshctl apply -f examples/demo-services.yaml (service demo/web, VIP 10.96.0.10:80, v1 80 / v2 20)"
sed -E "s/\b(n[12])\b/sm$run-\1/g" examples/demo-services.yaml > "$work/demo-services.yaml"
mctl apply -f "$work/demo-services.yaml"

step "Agents: node 1 joins with a one-time token (meshctl node add, as a VM would); node 2 as the Helm chart's DaemonSet does, with the cluster token and the CA's certificate from files"
mctl node add "$(node_name 1)" | tee "$work/join-n1.txt"
token=$(grep -o 'smt1\.[0-9a-f.]*' "$work/join-n1.txt")
ca_hash=$(grep -o 'sha256:[0-9a-f]*' "$work/join-n1.txt")
join_n1=(--join-token "$token" --ca-cert-hash "$ca_hash")
join_n2=(--join-token-file "$work/bootstrap-token" --ca-cert-file "$work/meshcp/state/ca/ca.crt")
for node in 1 2; do
  join_args="join_n$node[@]"
  "$meshlab" exec "$run" --node "$node" --background --log "$work/meshd-n$node.log" -- \
    "$meshd" --node "$(node_name "$node")" --cgroup "$(workload_cgroup "$node")" \
    --controlplane "$xds" --state-dir "$work/state-n$node" "${!join_args}" \
    --access-log-mode all --access-log "$work/access-n$node.jsonl" >/dev/null
done
# wait_acked SERVICE: until every agent holds the service's current version (describe says ACKed).
wait_acked() {
  for _ in $(seq 200); do
    mctl describe service "$1" > "$work/describe.txt" 2>&1 || true
    if [ "$(grep -cE "^sm$run-n[12] +ACKed\$" "$work/describe.txt")" -eq 2 ]; then return 0; fi
    sleep 0.05
  done
  cat "$work/describe.txt" "$work"/meshd-n*.log >&2
  echo "demo: $1 not ACKed by both agents" >&2
  exit 1
}
wait_acked demo/web
echo "meshd serving on $(node_name 1) and $(node_name 2), both at the control plane's version"
grep -o "event=node_joined node=[^ ]* method=[a-z_]*" "$work/meshcp.log" | sed "s/sm$run-//"

# health NODE PATH: the agent's probe endpoint (docs/metrics.md), as kubelet calls it, from the node.
health() {
  "$meshlab" exec "$run" --node "$1" -- curl -s -w ' HTTP %{http_code}' "http://127.0.0.1:15021/healthz/$2" |
    tr -d '\n'
}
step "Health probes (what the chart's DaemonSet points kubelet at): GET :15021/healthz/ready on each node"
for node in 1 2; do echo "n$node: $(health "$node" ready)"; done

# observe_split [URL]: $connections curl requests from the client pod; prints the split.
observe_split() {
  local url=${1:-http://10.96.0.10/}
  "$meshlab" exec "$run" --pod client -- sh -c \
    "for i in \$(seq $connections); do curl -gs --max-time 2 '$url' || echo FAILED; done" \
    > "$work/bodies.txt"
  sort "$work/bodies.txt" | uniq -c | sort -k2 | awk -v n="$connections" \
    '{ printf "  %-10s %5d  %5.1f%%\n", $2, $1, 100 * $1 / n }'
}

# udp_queries ADDRESS N: N DNS-style queries with socat (sendto/recvfrom; socat accepts replies
# only from the address it sent to, so every answer proves the reply came "from the VIP").
udp_queries() {
  "$meshlab" exec "$run" --pod client -- sh -c \
    "for i in \$(seq $2); do echo q | socat -t 0.2 - UDP-SENDTO:$1 | head -n 1 || true; done" \
    > "$work/udp.txt"
  sort "$work/udp.txt" | uniq -c | awk '{ printf "  %-10s %5d\n", $2, $1 }'
  local answered
  answered=$(grep -c '^web-' "$work/udp.txt" || true)
  [ "$answered" -eq "$2" ] || { echo "demo: $answered of $2 UDP queries to $1 answered" >&2; exit 1; }
}

# check_share NAME EXPECTED_FRACTION: fails beyond 5 sigma for the sample size.
check_share() {
  local got
  got=$(grep -c "^$1\$" "$work/bodies.txt" || true)
  awk -v got="$got" -v n="$connections" -v p="$2" -v name="$1" 'BEGIN {
    sigma = sqrt(p * (1 - p) / n); share = got / n; d = share - p; if (d < 0) d = -d
    if (d > 5 * sigma + 1e-9) { printf "demo: %s got %.3f, expected %.3f +- %.3f\n", name, share, p, 5 * sigma; exit 1 }
  }'
}

step "Split: $connections connections from the client pod to http://10.96.0.10/ (curl)"
observe_split
check_share web-v1-a 0.4
check_share web-v1-b 0.4
check_share web-v2-a 0.2
if grep -q FAILED "$work/bodies.txt"; then echo "demo: some connections failed" >&2; exit 1; fi
echo "split within 5 sigma of 40/40/20"

step "IPv6: $connections connections to http://[fd00:96::a]/ (the same service, its IPv6 VIP)"
observe_split 'http://[fd00:96::a]/'
check_share web-v1-a 0.4
check_share web-v1-b 0.4
check_share web-v2-a 0.2
if grep -q FAILED "$work/bodies.txt"; then echo "demo: some IPv6 connections failed" >&2; exit 1; fi
echo "IPv6 split within 5 sigma of 40/40/20"

step "UDP: 30 DNS-style queries to 10.96.0.53:53 and to [fd00:96::35]:53 (socat, round-robin)"
udp_queries 10.96.0.53:53 30
udp_queries '[fd00:96::35]:53' 30
echo "every UDP query answered, replies from the VIP"

step "Maglev: 50 connections from the client to http://10.96.0.20/ (service demo/sticky)"
"$meshlab" exec "$run" --pod client -- sh -c \
  'for i in $(seq 50); do curl -s --max-time 2 http://10.96.0.20/ || echo FAILED; done' > "$work/sticky.txt"
sort "$work/sticky.txt" | uniq -c | awk '{ printf "  %-10s %5d\n", $2, $1 }'
[ "$(sort -u "$work/sticky.txt" | wc -l)" -eq 1 ] || { echo "demo: the client moved between backends" >&2; exit 1; }
echo "the client stayed on one backend"

step "meshctl get services (node $(node_name 1))"
"$meshctl" --node "$(node_name 1)" get services
step "meshctl get endpoints"
"$meshctl" --node "$(node_name 1)" get endpoints

step "Live change: meshctl apply -f examples/demo-web-50-50.yaml (v1 50 / v2 50, only the service)"
mctl apply -f examples/demo-web-50-50.yaml
wait_acked demo/web
mctl describe service demo/web
observe_split
check_share web-v1-a 0.25
check_share web-v1-b 0.25
check_share web-v2-a 0.5
echo "split within 5 sigma of 25/25/50"

step "mTLS between nodes: node 2's agent saw the client's SPIFFE ID on every tunnelled connection"
grep -m 2 'event=inbound ' "$work/meshd-n2.log" | sed -E 's/^[^ ]+ level=info //'
inbound=$(grep -c 'event=inbound peer=spiffe://cluster.local/ns/demo/sa/client .*decision=allow' "$work/meshd-n2.log" || true)
[ "$inbound" -gt 0 ] || { echo "demo: node 2 saw no tunnelled connection from the client" >&2; exit 1; }
echo "node 2 accepted $inbound connections over mTLS from spiffe://cluster.local/ns/demo/sa/client"
mctl get identities

step "Same-node fast path (node $(node_name 1)): 64 MiB from web-v1-a to the client, socket to socket"
# A bulk server in web-v1-a (same node as the client); the client reads with socat (poll-driven).
"$meshlab" exec "$run" --pod web-v1-a --background --log "$work/bulk.log" -- \
  socat TCP-LISTEN:9200,reuseaddr,fork 'SYSTEM:head -c 67108864 /dev/zero' >/dev/null
veth_bytes() {
  "$meshlab" exec "$run" --pod client -- ip -s -j link show dev eth0 |
    jq '.[0].stats64.rx.bytes + .[0].stats64.tx.bytes'
}
fastpath_bytes() { "$meshctl" --node "$(node_name 1)" fastpath -o json | jq -r '.redirectedBytes // "0"'; }
for _ in $(seq 50); do
  "$meshlab" exec "$run" --pod client -- socat -u TCP:10.78.1.10:9200,connect-timeout=1 - \
    2>/dev/null | head -c 1 | grep -q . && break
  sleep 0.1
done
veth_before=$(veth_bytes)
fp_before=$(fastpath_bytes)
received=$("$meshlab" exec "$run" --pod client -- sh -c 'socat -u TCP:10.78.1.10:9200 - | wc -c')
veth_delta=$(( $(veth_bytes) - veth_before ))
fp_delta=$(( $(fastpath_bytes) - fp_before ))
"$meshctl" --node "$(node_name 1)" fastpath
echo "fast path: the client received $received bytes; $fp_delta bytes went socket to socket; the client's veth moved $veth_delta bytes"
[ "$received" -eq 67108864 ] && [ "$fp_delta" -ge 67108864 ] && [ "$veth_delta" -lt 65536 ] ||
  { echo "demo: the transfer did not take the fast path" >&2; exit 1; }
echo "64 MiB between two pods of one node, none of it through the veth"

step "Authorization: meshctl apply -f examples/demo-policy.yaml (web accepts only the client's identity)"
sed -E "s/\b(n[12])\b/sm$run-\1/g" examples/demo-policy.yaml > "$work/demo-policy.yaml"
mctl apply -f "$work/demo-policy.yaml"
# wait_all_acked: until both agents hold the control plane's current version.
wait_all_acked() {
  for _ in $(seq 200); do
    mctl cp status > "$work/cp.txt" 2>&1 || true
    local version
    version=$(sed -n 's/^Version: *//p' "$work/cp.txt")
    if [ "$(grep -cE "^sm$run-n[12] +yes .* $version +" "$work/cp.txt")" -eq 2 ]; then return 0; fi
    sleep 0.05
  done
  cat "$work/cp.txt" >&2
  echo "demo: the agents did not ACK the policy" >&2
  exit 1
}
wait_all_acked
mctl get policies
mctl check demo/client demo/web:80
rc=0
mctl check demo/intruder demo/web:80 || rc=$?
[ "$rc" -eq 3 ] || { echo "demo: meshctl check should deny the intruder (exit 3), got $rc" >&2; exit 1; }
# try POD N: N requests to the VIP; prints how many got an answer.
try() {
  "$meshlab" exec "$run" --pod "$1" -- sh -c \
    "for i in \$(seq $2); do curl -s --max-time 2 http://10.96.0.10/ || echo FAILED; done" > "$work/try.txt"
  grep -c '^web-' "$work/try.txt" || true
}
ok=$(try client 20)
denied=$((20 - $(try intruder 20)))
echo "client: $ok of 20 answered; intruder: $denied of 20 refused"
[ "$ok" -eq 20 ] && [ "$denied" -eq 20 ] || { echo "demo: the policy did not hold" >&2; exit 1; }
# The intruder runs on n2: to web-v1-a (n1) the tunnel's inbound agent denies it, to web-v1-b
# and web-v2-a (n2, its own node) the kernel refuses the connect.
"$meshctl" --node "$(node_name 1)" status | grep -A3 '^Tunnel:'
"$meshctl" --node "$(node_name 2)" status | sed -n '/^Same-node denials/,/^$/p'
echo "the intruder was denied on both paths: by node 1's agent (tunnel) and by node 2's kernel"

step "Observability (node $(node_name 1)): meshctl stats, the access log, BPF maps, Prometheus"
# Traffic while `meshctl stats` takes its two reads a second apart.
"$meshlab" exec "$run" --pod client -- sh -c \
  'for i in $(seq 60); do curl -s --max-time 2 http://10.96.0.10/ >/dev/null; sleep 0.02; done' &
traffic=$!
sleep 0.3
"$meshctl" --node "$(node_name 1)" stats --once --interval 1 --top 5
wait "$traffic"
sleep 0.5  # the access log is written as the agent reads the kernel's ring buffer
echo "access log ($work/access-n1.jsonl), one connection:"
grep '"source":{[^}]*"workload":"demo/client"' "$work/access-n1.jsonl" | grep '"service":"demo/web"' \
  | tail -n 2 | jq -c '{time, event, reason, connection, source: .source.principal,
      destination: .destination.address, route, bytes_sent, bytes_received, srtt_us}
    | with_entries(select(.value != null))'
# The kernel's counters and the access log agree on every connection from the client to demo/web.
"$meshctl" --node "$(node_name 1)" stats -o json > "$work/traffic.json"
counted=$(jq '[.pairs[] | select(.service == "demo/web" and .sourceWorkload == "demo/client")
  | (.closed // "0" | tonumber)] | add' "$work/traffic.json")
opens=$(jq -c 'select(.source.workload == "demo/client" and .destination.service == "demo/web"
  and .event == "open")' "$work/access-n1.jsonl" | wc -l)
closes=$(jq -c 'select(.source.workload == "demo/client" and .destination.service == "demo/web"
  and .event == "close" and .reason == "closed")' "$work/access-n1.jsonl" | wc -l)
lost=$(jq -r '.accessLog.eventsLost // "0"' "$work/traffic.json")
echo "demo/client -> demo/web: kernel counted $counted closed connections; access log: $opens open, $closes closed, $lost lost"
[ "$counted" -gt 0 ] && [ "$opens" -eq "$counted" ] && [ "$closes" -eq "$counted" ] && [ "$lost" -eq 0 ] ||
  { echo "demo: the access log and the kernel's counters disagree" >&2; exit 1; }
echo "access log and kernel counters agree"
"$meshctl" --node "$(node_name 1)" bpf maps
"$meshctl" --node "$(node_name 1)" bpf dump sm_services
echo "Prometheus, http://$(node_address 1):15020/metrics (scraped from the client pod):"
"$meshlab" exec "$run" --pod client -- curl -s --max-time 5 "http://$(node_address 1):15020/metrics" \
  > "$work/metrics.txt"
grep -E '^sockmesh_tcp_connections_opened_total\{.*destination_service="demo/web"' "$work/metrics.txt" | head -n 3
grep -E '^sockmesh_bpf_map_(entries|max_entries)\{map="sm_services"\}' "$work/metrics.txt"
if command -v promtool >/dev/null; then
  promtool check metrics < "$work/metrics.txt" && echo "promtool check metrics: ok"
fi

step "Counters (node $(node_name 1))"
"$meshctl" --node "$(node_name 1)" status | sed -n '/^Counters/,$p'

step "Resilience: a connection rate limit on demo/web, decided by the kernel at connect() (meshctl apply -f examples/demo-resilience.yaml: burst 10, then 1/s)"
mctl apply -f examples/demo-resilience.yaml
wait_all_acked
"$meshlab" exec "$run" --pod client -- sh -c \
  "for i in \$(seq 30); do curl -s --max-time 2 http://10.96.0.10/ || echo REFUSED; done" > "$work/rate.txt"
answered=$(grep -c '^web-' "$work/rate.txt" || true)
refused=$(grep -c '^REFUSED$' "$work/rate.txt" || true)
echo "rate limit: $answered of 30 answered, $refused refused at connect()"
# 30 connects take about a second: the burst of 10, and the one or two tokens of that second.
[ "$answered" -ge 10 ] && [ "$answered" -le 12 ] && [ $((answered + refused)) -eq 30 ] ||
  { echo "demo: the rate limit did not hold" >&2; exit 1; }
"$meshctl" --node "$(node_name 1)" resilience demo/web
mctl apply -f examples/demo-web-50-50.yaml
wait_all_acked
echo "rate limit lifted (examples/demo-web-50-50.yaml)"

step "Upgrade without a dropped connection: a second meshd for node 1 takes the first one's listening sockets (SCM_RIGHTS); the first drains its connections and exits"
old_pid=$("$meshctl" --node "$(node_name 1)" status | awk '/^PID:/ { print $2 }')
connections=150
observe_split >/dev/null &
loop=$!
sleep 0.3
"$meshlab" exec "$run" --node 1 --background --log "$work/meshd-n1.log" -- \
  "$meshd" --node "$(node_name 1)" --cgroup "$(workload_cgroup 1)" \
  --controlplane "$xds" --state-dir "$work/state-n1" \
  --access-log-mode all --access-log "$work/access-n1.jsonl" >/dev/null  # joined: no token
wait "$loop"
for _ in $(seq 400); do kill -0 "$old_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$old_pid" 2>/dev/null && { echo "demo: the replaced agent (pid $old_pid) did not exit" >&2; exit 1; }
new_pid=$("$meshctl" --node "$(node_name 1)" status | awk '/^PID:/ { print $2 }')
answered=$(grep -c '^web-' "$work/bodies.txt" || true)
grep -oE 'event=(handed_over|handover_received|drained) [^"]*' "$work/meshd-n1.log" | sed -E 's/ +$//'
[ "$answered" -eq "$connections" ] || { echo "demo: $answered of $connections connections answered during the upgrade" >&2; exit 1; }
echo "upgrade: $answered of $connections connections answered while node 1's agent changed (pid $old_pid -> $new_pid)"

step "meshctl controlplane status"
mctl cp status

step "meshcp stopped: the agents keep serving the last good state"
stop_meshcp
connections=100
observe_split
check_share web-v1-a 0.25
check_share web-v1-b 0.25
check_share web-v2-a 0.5
if grep -q FAILED "$work/bodies.txt"; then echo "demo: connections failed without meshcp" >&2; exit 1; fi
echo "without meshcp: split still within 5 sigma of 25/25/50"
"$meshctl" --node "$(node_name 1)" status | grep -E '^(Config|Stream):'
echo "n1 live: $(health 1 live)"
echo "n1 ready: $(health 1 ready)"

step "Teardown"
"$meshlab" down "$run"
run=""
echo "demo: ok"
