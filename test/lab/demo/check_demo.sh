#!/usr/bin/env bash
# Runs `scripts/demo.sh --short` on an existing build and checks what it printed.
set -uo pipefail
source_dir=$1
build_dir=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

SOCKMESH_BUILD_DIR=$build_dir "$source_dir/scripts/demo.sh" --short >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || { echo "check_demo: demo exited $rc"; exit 1; }

expect() {
  grep -Eq -- "$1" "$out" || { echo "check_demo: missing in the demo's output: $1"; exit 1; }
}
expect '^split within 5 sigma of 40/40/20$'
expect '^split within 5 sigma of 25/25/50$'
expect '^IPv6 split within 5 sigma of 40/40/20$'
expect '^every UDP query answered, replies from the VIP$'
expect '^the client stayed on one backend$'
expect '^demo +web +10\.96\.0\.10:80/TCP,\[fd00:96::a\]:80/TCP +RANDOM +3/3$'
expect '^demo +dns +10\.96\.0\.53:53/UDP,\[fd00:96::35\]:53/UDP +ROUND_ROBIN +3/3$'
expect '^demo +sticky +10\.96\.0\.20:80/TCP +MAGLEV\(4093\) +3/3$'
expect '^demo/web +web-v2-a +10\.78\.2\.11:8080 +v2 +[0-9]+ +20\.0%$'
expect '^demo/web +web-v2-a +\[fd00:78:2::11\]:8080 +v2 +[0-9]+ +20\.0%$'
expect '^connect_balanced +730$'
expect '^connect_no_backend +0$'
expect '^sendmsg_balanced +60$'
expect '^service/demo/web configured$'
expect '^0 created, 1 configured, 0 unchanged: the control plane is at version [0-9]+$'
expect '^sm[0-9a-z]+-n1 +ACKed$'
expect '^sm[0-9a-z]+-n2 +ACKed$'
expect '^v2 +version=v2 +50$'
expect '^sm[0-9a-z]+-n1 +yes \([0-9a-z]+\) +[0-9]+ +- +-$'
expect '^without meshcp: split still within 5 sigma of 25/25/50$'
expect '^upgrade: 150 of 150 connections answered while node 1.s agent changed \(pid [0-9]+ -> [0-9]+\)$'
expect '^event=handed_over listeners=3 '
expect '^event=drained open_streams=0 '
expect '^Stream: +(connecting|backoff)'
expect '^event=inbound peer=spiffe://cluster\.local/ns/demo/sa/client destination=10\.78\.2\.1[01]:8080 '
expect '^node 2 accepted [0-9]+ connections over mTLS from spiffe://cluster\.local/ns/demo/sa/client$'
expect '^sm[0-9a-z]+-n1 +demo/client +spiffe://cluster\.local/ns/demo/sa/client '
expect '^denied: 3 of 3 endpoints of service demo/web deny spiffe://cluster\.local/ns/demo/sa/intruder on port 80$'
expect '^client: 20 of 20 answered; intruder: 20 of 20 refused$'
expect '^inbound .*default deny \(ALLOW policies select the workload but none matched\)=[1-9]'
expect '^default deny \(ALLOW policies select the workload but none matched\) +[1-9]'
expect '^access log and kernel counters agree$'
expect '^sm_services +hash +[0-9]+/16384 '
expect '^sockmesh_tcp_connections_opened_total\{.*source_workload="demo/client"'
expect '^promtool check metrics: ok$'
expect '^Fast path: +on'
expect '^64 MiB between two pods of one node, none of it through the veth$'
expect '^rate limit: 1[0-2] of 30 answered, (18|19|20) refused at connect\(\)$'
expect '^Refused: +overflow 0, no backend 0, rate limited (18|19|20), fault 0$'
expect '^rate limit lifted'
expect '^event=node_joined node=n1 method=node_token$'
expect '^event=node_joined node=n2 method=cluster_token$'
expect '^n1: \{"status":"ok","checks":\[\{"name":"programs_attached","ok":true.*\{"name":"controlplane_stream","ok":true.* HTTP 200$'
expect '^n2: \{"status":"ok",.*"name":"node_certificate","ok":true.* HTTP 200$'
expect '^n1 live: \{"status":"ok".* HTTP 200$'
expect '^n1 ready: \{"status":"fail",.*\{"name":"controlplane_stream","ok":false.* HTTP 503$'
expect '^demo: ok$'
# Nothing of the lab may remain.
if ip netns list | grep -q "^sm$(sed -n 's/^RUN_ID=//p' "$out")"; then
  echo "check_demo: the demo left network namespaces behind"
  exit 1
fi
echo "check_demo: ok"
