#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian 12 packages STF-C needs to build, test and run,
# only those that are missing (apt-get update first). Sourced or run by scripts/test and scripts/up.
set -euo pipefail

STF_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev python3 curl rsync procps util-linux
    libmicrohttpd-dev libpq-dev libhiredis-dev librsync-dev libmurmurhash-dev
    libcurl4-openssl-dev libssl-dev postgresql redis-server redis-tools nginx wrk
    clang libclang-rt-14-dev)

missing=()
for p in "${STF_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "${missing[@]}"
fi
