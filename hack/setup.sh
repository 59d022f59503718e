#!/usr/bin/env bash
# One-command set-up: system packages, the Python environment, the local
# Kubernetes control plane binaries and the example agents. Every step is
# skipped when its inputs have not changed, so a second run takes seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n== %s\n' "$*" >&2; }

step "system packages (clang and lld for wasm32 agents)"
need=()
command -v clang >/dev/null || need+=(clang)
command -v wasm-ld >/dev/null || need+=(lld)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing ${need[*]}: run 'sudo apt-get install ${need[*]}' or re-run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "clang: $(command -v clang), wasm-ld: $(command -v wasm-ld)" >&2

step "python environment (.venv)"
stamp_key="$( (cat pyproject.toml; python3 --version) | sha256sum | cut -c1-16)"
if [[ ! -f .venv/.igor-stamp || "$(cat .venv/.igor-stamp)" != "$stamp_key" ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$stamp_key" > .venv/.igor-stamp
else
  echo "up to date" >&2
fi

step "control plane binaries (etcd, kube-apiserver, kube-controller-manager, kubectl, helm)"
bin="$(hack/controlplane/build.sh | tail -n 1)"
ln -sfn "$bin" hack/controlplane/bin
echo "binaries in $bin (linked from hack/controlplane/bin)" >&2

if [[ -f agents/Makefile ]]; then
  step "example agents"
  make -s -C agents
fi
step "set-up complete"
