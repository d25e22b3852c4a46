#!/usr/bin/env bash
# deps.sh — install the Debian packages listed in tools/deps/*.list (idempotent).
#   tools/deps.sh check     exit 0 when every package is installed, 1 (listing them) otherwise
#   tools/deps.sh install   install what is missing: apt-get update once, non-interactive,
#                           with a policy-rc.d so no package's service is left running
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-install}

wanted() {
  sed -e 's/#.*//' "$here"/deps/*.list | tr -s ' \t' '\n\n' | sed '/^$/d' | sort -u
}

missing() {
  local p
  for p in $(wanted); do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      echo "$p"
    fi
  done
}

todo=$(missing)
if [ -z "$todo" ]; then
  [ "$mode" = check ] || echo "deps: all $(wanted | wc -l) packages present"
  exit 0
fi
if [ "$mode" = check ]; then
  echo "deps: missing:" $todo
  exit 1
fi

sudo=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install as root:" $todo >&2; exit 1; }
  sudo=sudo
fi

echo "deps: installing:" $todo
export DEBIAN_FRONTEND=noninteractive
# Never let a package start its service (nginx, postgresql, ...): tests start their own.
policy=/usr/sbin/policy-rc.d
restore=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  restore=1
fi
cleanup() { if [ -n "$restore" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

# Preseed questions packages would otherwise ask.
if [ -n "$(echo "$todo" | grep -x postfix || true)" ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
fi

$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $todo

left=$(missing)
if [ -n "$left" ]; then
  echo "deps: still missing after install:" $left >&2
  exit 1
fi
echo "deps: done"
