#!/usr/bin/env bash
# setup.sh — installs what building and testing Sluice needs on Debian 12.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config clang libevent-dev libcurl4-openssl-dev libssl-dev libjansson-dev
          libyaml-dev libhiredis-dev libcriterion-dev redis-server nginx-light wrk valgrind curl ca-certificates
          nodejs npm)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# nodejs/npm may come from outside Debian (e.g. NodeSource); a working node >= 18 is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for package in "${missing[@]}"; do [[ $package == nodejs || $package == npm ]] || filtered+=("$package"); done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ -f tests/package.json && ! -d tests/node_modules ]]; then
    echo "setup: installing the test SDKs from npm"
    if [[ -f tests/package-lock.json ]]; then
        (cd tests && npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd tests && npm install --no-audit --no-fund --loglevel=error)
    fi
fi
