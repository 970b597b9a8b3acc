#!/usr/bin/env bash
# Install what sluice needs from Debian's packages, only what is missing.
#   scripts/deps.sh run    build dependencies
#   scripts/deps.sh test   build + test dependencies
#   scripts/deps.sh bench  build + benchmark peers
set -euo pipefail

what=${1:-run}
pkgs=(gcc make libc-ares-dev libxxhash-dev)
case "$what" in
run) ;;
test) pkgs+=(python3 curl openssl clang clang-format libclang-rt-14-dev valgrind iproute2) ;;
bench) pkgs+=(python3 curl wrk nginx-light squid tinyproxy trafficserver) ;;
*) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Services in these packages (nginx, squid, trafficserver) must not start on
# install: the benchmark starts its own instances on its own ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod +x /usr/sbin/policy-rc.d
	trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
