#!/usr/bin/env bash
# Installs the built binaries (meshd, meshcp, meshctl) and the docs; with --systemd also the unit
# that runs meshd on a host outside Kubernetes (docs/install.md "Outside Kubernetes").
#   scripts/install.sh [--build-dir DIR] [--prefix PREFIX] [--root ROOT] [--systemd]
# DIR: a built tree (default build/release, scripts/build.sh release). PREFIX: default /usr/local.
# ROOT: install below this directory instead of / (the container image, tests).
# An existing /etc/sockmesh/meshd.env is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build/release prefix=/usr/local root= systemd=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --systemd) systemd=1; shift ;;
    -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute, got \"$prefix\"" >&2; exit 2 ;; esac

for binary in agent/meshd controlplane/meshcp cli/meshctl; do
  if [ ! -x "$build_dir/$binary" ]; then
    echo "install.sh: $build_dir/$binary is missing: run scripts/build.sh release first" >&2
    exit 1
  fi
done

install -d "$root$prefix/bin" "$root$prefix/share/doc/sockmesh"
install -m 0755 "$build_dir/agent/meshd" "$build_dir/controlplane/meshcp" "$build_dir/cli/meshctl" \
  "$root$prefix/bin/"
install -m 0644 README.md docs/*.md "$root$prefix/share/doc/sockmesh/"

if [ "$systemd" = 1 ]; then
  install -d "$root/etc/systemd/system" "$root/etc/sockmesh"
  for unit in sockmesh-meshd.service mesh.slice; do
    sed -e "s|/usr/local/|$prefix/|g" "packaging/systemd/$unit" >"$root/etc/systemd/system/$unit"
    chmod 0644 "$root/etc/systemd/system/$unit"
  done
  if [ ! -e "$root/etc/sockmesh/meshd.env" ]; then
    install -m 0644 packaging/systemd/meshd.env "$root/etc/sockmesh/meshd.env"
  fi
fi
echo "install.sh: installed meshd, meshcp and meshctl in $root$prefix/bin"
