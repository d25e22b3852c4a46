#!/usr/bin/env bash
# smoke.t — every libFuzzer target runs clean for a few seconds, and its planted-bug build
# (-DCROW_PLANTED_BUG) is caught within a bounded time.   # timeout: 300
set -u
cd "${CROW_ROOT:-$(dirname "$0")/../..}"
secs=${CROW_FUZZ_SMOKE_SECONDS:-4}
n=0
work=$(mktemp -d /tmp/crow-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
srcs=(t/fuzz/fuzz_*.c)
[ -e "${srcs[0]}" ] || srcs=()
for src in "${srcs[@]}"; do
  name=$(basename "$src" .c)
  bin=build/fuzz/$name
  n=$((n + 1))
  if [ ! -x "$bin" ]; then echo "not ok $n - $name built (run make fuzz-bins)"; n=$((n + 1)); echo "not ok $n - $name planted"; continue; fi
  mkdir -p "$work/$name"
  seeds=(); [ -d "t/fuzz/corpus/${name#fuzz_}" ] && seeds=("t/fuzz/corpus/${name#fuzz_}")
  if timeout $((secs + 60)) "$bin" -max_total_time="$secs" -artifact_prefix="$work/$name-" \
       "$work/$name" "${seeds[@]}" >"$work/$name.log" 2>&1; then
    echo "ok $n - $name runs ${secs}s without a finding"
  else
    echo "not ok $n - $name runs ${secs}s without a finding"; tail -20 "$work/$name.log" | sed 's/^/# /'
  fi
  n=$((n + 1))
  mkdir -p "$work/$name-p"
  if timeout 240 "${bin}_planted" -max_total_time=180 -artifact_prefix="$work/$name-p-" \
       "$work/$name-p" "${seeds[@]}" >"$work/$name-p.log" 2>&1; then
    echo "not ok $n - $name finds the planted bug (it ran clean)"
  elif grep -qE 'ERROR: (libFuzzer|AddressSanitizer)|runtime error|deadly signal' "$work/$name-p.log"; then
    echo "ok $n - $name finds the planted bug ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|runtime error|deadly signal' "$work/$name-p.log"))"
  else
    echo "not ok $n - $name finds the planted bug (exited without a report)"; tail -5 "$work/$name-p.log" | sed 's/^/# /'
  fi
done
echo "1..$n"
