#!/usr/bin/env bash
# Installs every Debian package sockmesh needs to build, test and run its demo.
# Idempotent and non-interactive: a machine that already has everything does no network work.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm clang-format
  # fuzzing (test/fuzz): libFuzzer and the sanitizers' runtimes of Debian 12's clang 14
  libclang-rt-14-dev
  # BPF: libbpf headers and library, bpftool for vmlinux.h and skeletons
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  # C++ libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libcli11-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev
  # mTLS tunnel between node agents: OpenSSL 3, HTTP/2 (CONNECT streams), Asio
  libssl-dev libnghttp2-dev libasio-dev
  # lab and demo: namespaces, veths, an unmodified client and server
  iproute2 procps psmisc curl socat util-linux
  # tests: the no-plaintext capture on the node link
  tcpdump
  # benchmarks
  iptables haproxy sockperf wrk iperf3 nginx jq
  # vmtests: boot Debian's kernels under qemu (TCG) with a busybox initramfs
  qemu-system-x86 busybox-static cpio
  # metrics (docs/metrics.md): Prometheus endpoints of meshd and meshcp; promtool checks them
  prometheus-cpp-dev prometheus
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
