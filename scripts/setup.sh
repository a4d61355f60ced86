#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: toolchains, npm packages, the venv.
# Quick when nothing is missing. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# python3: Debian's /usr/bin/python3 runs sandboxed Python programs and the sandbox supervisor (no pyenv shim);
# python3-seccomp: libseccomp's own bindings (for that python3), which build the sandbox's seccomp filter
APT_PACKAGES=(g++ openjdk-17-jdk-headless php-cli mono-mcs mono-runtime libjavatuples-java bubblewrap nodejs python3 python3-seccomp util-linux)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/tsc ] || ! cmp -s package.json node_modules/.package.json.installed; then
  echo "[setup] npm: installing pinned packages from package.json"
  npm install --no-audit --no-fund --silent
  cp package.json node_modules/.package.json.installed
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] venv: creating .venv"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] venv: installing torch==2.13.0 (CPU) first, then rewardranker"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e ".[dev,ray]"
  rm -f .venv/.installed-*; touch "$stamp"
fi
