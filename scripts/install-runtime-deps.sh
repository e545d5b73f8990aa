#!/usr/bin/env bash
# Installs the Debian 12 packages meshd, meshcp and meshctl need at run time, and nothing to build
# with: the container image's final stage runs it, and so does a host that installs the binaries
# (docs/install.md). test/chart/image_recipe.test.mjs checks the list against the binaries' ldd.
#   --clean-apt-lists  remove apt's package lists afterwards (a smaller image layer)
set -euo pipefail

clean=0
[ "${1:-}" = --clean-apt-lists ] && clean=1

packages=(
  libc6 libgcc-s1 libstdc++6 zlib1g
  libbpf1 libelf1
  libssl3 libnghttp2-14
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libc-ares2 libre2-9
  libyaml-cpp0.7 libspdlog1.10 libfmt9
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-runtime-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi
echo "install-runtime-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ "$clean" = 1 ]; then
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi
