#!/usr/bin/env bash
# The vmtests runner (docs/kernels.md): boots the kernel test binaries on Debian's packaged
# kernels under qemu (TCG: no KVM on CI machines) and fails unless the guest reports rc=0.
#
#   vmtests/run.sh --binary BUILD/test/bpf/sock_lb/sock_lb_test \
#                  [--binary BUILD/test/bpf/capture/capture_test ...] [NAME...] [-- TEST-ARGS...]
#
# NAME is a kernel of vmtests/kernels.txt (default: all of them). Steps, each skipped when its
# output is up to date: download the kernel packages and busybox-static into the cache
# (apt-get download, only the vmlinuz is extracted), build one initramfs (busybox, vmtests/init,
# the test binaries, their shared libraries and the dynamic loader), then per kernel boot qemu
# with a timeout, keep the serial console in WORK/logs/NAME.log and read the guest's result
# marker. The guest runs the binaries one after another, in the order given; TEST-ARGS go to each
# of them (e.g. --gtest_filter=SockLbTest.*: a filter that matches nothing in one binary passes).
#
# Options:
#   --binary PATH    a test binary; repeat for more (required unless --prepare-only finds an
#                    initramfs built)
#   --work DIR       initramfs and logs (default: build/vmtests)
#   --cache DIR      downloaded packages and kernels (default: build/vmtests-cache; never commit)
#   --timeout SECS   per boot, covering boot, tests and power-off (default: 840)
#   --mem MIB        guest memory (default: 1024)
#   --smp N          guest CPUs (default: 2)
#   --prepare-only   download and build the initramfs, boot nothing (the ctest fixture vm.prepare)
#   --inject WHAT    fail | panic | hang: make the guest fail on purpose (to prove failures fail);
#                    also from the environment, SOCKMESH_VMTEST_INJECT=fail ctest -L vm
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
binaries=()
work=$root/build/vmtests
cache=$root/build/vmtests-cache
timeout_s=840
mem=1024
smp=2
prepare_only=0
inject=${SOCKMESH_VMTEST_INJECT:-}
names=()
test_args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binaries+=("$2"); shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --prepare-only) prepare_only=1; shift ;;
    --inject) inject=$2; shift 2 ;;
    --) shift; test_args=("$@"); break ;;
    -*) echo "vmtests: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done

case "$inject" in
  '' | fail | panic | hang) ;;
  *) echo "vmtests: inject must be fail, panic or hang, not '$inject'" >&2; exit 2 ;;
esac

# The kernel list: one "NAME PACKAGE" a line, # comments.
declare -A package_of=()
all_names=()
while read -r name package _; do
  case "$name" in '' | '#'*) continue ;; esac
  package_of[$name]=$package
  all_names+=("$name")
done <"$here/kernels.txt"
[ ${#names[@]} -gt 0 ] || names=("${all_names[@]}")
for name in "${names[@]}"; do
  [ -n "${package_of[$name]:-}" ] || { echo "vmtests: $name is not in vmtests/kernels.txt" >&2; exit 2; }
done

for tool in qemu-system-x86_64 apt-get dpkg-deb cpio gzip flock timeout; do
  command -v "$tool" >/dev/null || { echo "vmtests: $tool missing; run scripts/install-deps.sh" >&2; exit 2; }
done

mkdir -p "$cache" "$work/logs"

# A meta-package (linux-image-amd64, linux-image-6.12-amd64) depends on exactly one concrete image
# package; follow that chain so the cache key is the real ABI and version.
resolve_package() {
  local p=$1 next
  for _ in 1 2 3; do
    next=$(apt-cache depends --important "$p" 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
    [ -n "$next" ] || break
    p=$next
  done
  echo "$p"
}

# Downloads PACKAGE (at apt's candidate version) into DIR unless DIR already holds that version, and
# extracts the members matching PATTERN. Offline, an earlier download is used as is.
fetch_package() {
  local package=$1 dir=$2 pattern=$3 version
  version=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')
  [ "$version" != "(none)" ] || version=
  if [ -f "$dir/.package" ] && { [ -z "$version" ] || [ "$(cat "$dir/.package")" = "$package $version" ]; }; then
    return 0
  fi
  if [ -z "$version" ]; then
    echo "vmtests: apt knows no package $package (apt-get update? the archive may have dropped it)" >&2
    return 1
  fi
  echo "vmtests: downloading $package $version" >&2
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/deb"
  # Sandbox user root: apt's _apt user cannot write into a root-owned cache directory.
  if ! (cd "$dir.tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$package=$version" >/dev/null); then
    rm -rf "$dir.tmp"
    # Offline, or the mirror has moved on: an earlier download still tests that kernel.
    [ -f "$dir/.package" ] || return 1
    echo "vmtests: download failed; using the cached $(cat "$dir/.package")" >&2
    return 0
  fi
  # Only the wanted members: a kernel package also carries ~400 MB of modules the guest never loads.
  dpkg-deb --fsys-tarfile "$dir.tmp"/deb/*.deb | tar -x -C "$dir.tmp" --wildcards "$pattern"
  rm -rf "$dir.tmp/deb"
  echo "$package $version" >"$dir.tmp/.package"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

prepare_kernels() {
  local name package
  for name in "${names[@]}"; do
    package=$(resolve_package "${package_of[$name]}")
    fetch_package "$package" "$cache/kernel-$name" './boot/vmlinuz-*'
  done
  fetch_package busybox-static "$cache/busybox" './bin/busybox'
}

# Copies FILE into the initramfs tree at the same path, following symlinks (ld.so finds libraries
# by the names ldd printed).
copy_in() {
  local file=$1
  mkdir -p "$stage$(dirname "$file")"
  cp -L "$file" "$stage$file"
}

build_initrd() {
  local initrd=$work/initrd.gz
  if [ ${#binaries[@]} -eq 0 ]; then
    [ -f "$initrd" ] && return 0
    echo "vmtests: --binary is required to build the initramfs" >&2
    return 2
  fi
  local b resolved=() fresh=1
  for b in "${binaries[@]}"; do
    b=$(readlink -f "$b")
    [ -x "$b" ] || { echo "vmtests: $b is not an executable" >&2; return 2; }
    resolved+=("$b")
    [ "$initrd" -nt "$b" ] || fresh=0
  done
  if [ -f "$initrd" ] && [ "$(cat "$work/initrd.src" 2>/dev/null)" = "${resolved[*]}" ] && [ "$fresh" = 1 ] &&
    [ "$initrd" -nt "$here/init" ] && [ "$initrd" -nt "$here/run.sh" ] &&
    [ "$initrd" -nt "$cache/busybox/.package" ]; then
    return 0
  fi
  echo "vmtests: building $initrd from ${resolved[*]}" >&2
  stage=$work/initrd-root
  rm -rf "$stage"
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,vmtest/tests}
  cp "$cache/busybox/bin/busybox" "$stage/bin/busybox"
  # The interpreter of /init; init installs the other applets itself.
  ln -s busybox "$stage/bin/sh"
  install -m 0755 "$here/init" "$stage/init"
  # Debug info is half of each binary and only slows down the initramfs; symbols stay for
  # backtraces. The number prefix keeps the order given.
  local i=0 lib
  for b in "${resolved[@]}"; do
    i=$((i + 1))
    objcopy --strip-debug "$b" "$stage/vmtest/tests/$(printf '%02d' "$i")-$(basename "$b")"
  done
  # Every shared library and the dynamic loader, as ldd resolves them on this host.
  while read -r lib; do
    copy_in "$lib"
  done < <(for b in "${resolved[@]}"; do ldd "$b"; done |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  echo "root:x:0:0:root:/:/bin/sh" >"$stage/etc/passwd"
  # scripts/test.sh points LSAN_OPTIONS at this file by its absolute path.
  copy_in "$root/test/lsan.supp"
  (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  echo "${resolved[*]}" >"$work/initrd.src"
  rm -rf "$stage"
}

# One boot: prints the guest console and a verdict; returns 0 only when the marker says rc=0.
boot() {
  local name=$1 vmlinuz log begin end rc marker append
  vmlinuz=$(echo "$cache/kernel-$name"/boot/vmlinuz-*)
  log=$work/logs/$name.log
  append="console=ttyS0 quiet panic=-1 rdinit=/init"
  [ -z "$inject" ] || append+=" SOCKMESH_VMTEST_INJECT=$inject"
  # The sanitizer settings of scripts/test.sh reach a sanitized test binary in the guest too
  # (name=value words become init's environment; a value cannot contain spaces).
  local v
  for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
    [ -z "${!v:-}" ] || append+=" $v=${!v// /}"
  done
  # Words after "--" on the kernel command line become init's arguments (no spaces in them).
  [ ${#test_args[@]} -eq 0 ] || append+=" -- ${test_args[*]}"
  echo "vmtests: $name: booting $(cat "$cache/kernel-$name/.package") (log: $log)"
  begin=$(date +%s.%N)
  rc=0
  timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp "$smp" -m "$mem" \
    -nographic -no-reboot -kernel "$vmlinuz" -initrd "$work/initrd.gz" -append "$append" \
    </dev/null >"$log.raw" 2>&1 || rc=$?
  end=$(date +%s.%N)
  tr -d '\r' <"$log.raw" >"$log"
  rm -f "$log.raw"
  # The guest's own output; bounded, since a misbehaving guest can print without end.
  sed 's/^/  | /' "$log" | tail -n 400
  local secs
  secs=$(awk -v b="$begin" -v e="$end" 'BEGIN {printf "%.1f", e - b}')
  marker=$(grep -a -o 'SOCKMESH-VMTEST-RESULT rc=[0-9]*.*' "$log" | tail -n 1 || true)
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "vmtests: $name: FAIL: no power-off within ${timeout_s}s (timeout), after ${secs}s; last lines:"
    tail -n 30 "$log" | sed 's/^/  ! /'
    return 1
  fi
  if [ -z "$marker" ]; then
    echo "vmtests: $name: FAIL: the guest printed no result marker (kernel panic or init died;" \
      "qemu rc=$rc) after ${secs}s; last lines:"
    tail -n 30 "$log" | sed 's/^/  ! /'
    return 1
  fi
  local guest_rc test_secs
  guest_rc=$(sed -n 's/.*rc=\([0-9]*\).*/\1/p' <<<"$marker")
  test_secs=$(awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
    END {printf "%.1f", v["end"] - v["start"]}' <<<"$marker")
  if [ "$guest_rc" != 0 ]; then
    echo "vmtests: $name: FAIL: guest test rc=$guest_rc (tests ${test_secs}s, boot total ${secs}s)"
    grep -a '^\[  FAILED  \]' "$log" | sort -u | sed 's/^/  ! /' || true
    return 1
  fi
  echo "vmtests: $name: PASS (tests ${test_secs}s guest time, ${secs}s wall incl. boot)"
}

(
  flock 9
  prepare_kernels
) 9>"$cache/.lock"
(
  flock 9
  build_initrd
) 9>"$work/.lock"
[ "$prepare_only" -eq 0 ] || exit 0

failed=()
for name in "${names[@]}"; do
  boot "$name" || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "vmtests: FAILED on: ${failed[*]}"
  exit 1
fi
echo "vmtests: all passed: ${names[*]}"
