#!/usr/bin/env bash
# cpu-per-request.sh — server CPU time per request (utime+stime of the server's process tree
# from /proc, over a wrk run; its user part alone in the last column), crow-httpd against
# nginx, one worker each, and the wrk client's own CPU per request (user+sys).  Robust to other
# load on the machine, unlike req/s.
# Usage: bench/cpu-per-request.sh [SECONDS] [CONNS]
# PATHS="/hello /4k.bin /1m.bin" picks the rows; PIN=1 pins the servers to CPU 0 and wrk to
# CPU 1 (req/s then compares servers on one core each); CROW_HTTPD=path runs another build.
set -u
cd "$(dirname "$0")/.."
secs=${1:-4}; conns=${2:-50}
work=$(mktemp -d /tmp/crow-cpureq-XXXXXX); chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
mkdir -p "$work/root" "$work/nginx"
head -c 4096 /dev/urandom > "$work/root/4k.bin"
head -c 1048576 /dev/urandom > "$work/root/1m.bin"
pn=$(free_port); pc=$(free_port)
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4000; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$pn; root $work/root;
    location = /hello { default_type text/plain; return 200 "hello\n"; } }
}
NGX
srv_pin=(); wrk_pin=()
[ "${PIN:-0}" = 1 ] && { srv_pin=(taskset -c 0); wrk_pin=(taskset -c 1); }
"${srv_pin[@]}" /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.err" & pids+=($!)
cat > "$work/crow.conf" <<CONF
listen 127.0.0.1:$pc
workers 1
vhost bench {
  default yes
  root $work/root
  route /hello crow.http:hello exact
}
CONF
"${srv_pin[@]}" ${CROW_HTTPD:-build/bin/crow-httpd} --foreground -f "$work/crow.conf" 2>"$work/crow.err" & pids+=($!)
wait_port $pn && wait_port $pc || { echo "a server did not start"; cat "$work"/*.err; exit 1; }
tree() { local p=$1; echo "$p"; for c in $(pgrep -P "$p"); do tree "$c"; done; }
# ticks PID [FIELDS]: utime+stime (or the awk expression FIELDS, e.g. '$14' for utime only)
ticks() { local t=0; for p in $(tree "$1"); do t=$(( t + $(awk "{print ${2:-\$14 + \$15}}" /proc/$p/stat 2>/dev/null || echo 0) )); done; echo $t; }
hz=$(getconf CLK_TCK)
printf "%-8s %-10s %10s %10s %12s %12s %12s\n" path server requests req/s "cpu us/req" "user us/req" "wrk us/req"
for path in ${PATHS:-/hello /4k.bin /1m.bin}; do
  for s in nginx crow; do
    if [ $s = nginx ]; then port=$pn; pid=${pids[0]}; else port=$pc; pid=${pids[1]}; fi
    c=$conns; [ $path = /1m.bin ] && c=10
    "${wrk_pin[@]}" wrk -t1 -c$c -d1s "http://127.0.0.1:$port$path" >/dev/null 2>&1
    t0=$(ticks $pid); u0=$(ticks $pid '$14')
    out=$("${wrk_pin[@]}" /usr/bin/time -f "%U %S" -o "$work/wrk.time" wrk -t1 -c$c -d${secs}s "http://127.0.0.1:$port$path" 2>&1)
    grep -q Non-2xx <<<"$out" && echo "# $s $path: non-2xx answers"
    t1=$(ticks $pid); u1=$(ticks $pid '$14')
    n=$(awk '/requests in/ {print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    wt=$(awk '{print $1 + $2}' "$work/wrk.time")
    printf "%-8s %-10s %10s %10s %12.2f %12.2f %12.2f\n" $path $s $n $rps "$(echo "($t1-$t0)*1000000/$hz/$n" | bc -l)" \
           "$(echo "($u1-$u0)*1000000/$hz/$n" | bc -l)" "$(echo "$wt*1000000/$n" | bc -l)"
  done
done
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
