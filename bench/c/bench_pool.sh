#!/usr/bin/env bash
# bench_pool.sh BIN — runs BIN once for crow_pool and once per malloc (glibc as linked,
# jemalloc and mimalloc through LD_PRELOAD), then prints the markdown section from the rows.
set -u
bin=${1:?usage: bench_pool.sh BIN}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
libdir=/usr/lib/x86_64-linux-gnu
"$bin" --row crow >> "$rows" || exit 1
"$bin" --row crow-keep >> "$rows" || exit 1
"$bin" --row glibc >> "$rows" || exit 1
for peer in jemalloc mimalloc; do
  so=$libdir/lib$peer.so.2
  if [ -e "$so" ]; then
    LD_PRELOAD=$so "$bin" --row "$peer" >> "$rows" || exit 1
  else
    echo "bench_pool: $so missing, $peer not measured" >&2
  fi
done
"$bin" --report "$rows"
