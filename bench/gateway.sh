#!/usr/bin/env bash
# The gateway against nginx, side by side in one run (issue 5). One nginx
# (Debian's nginx-core) serves three things on loopback: the upstream
# (plain HTTP, `return 200`), a front doing the gateway's job
# (ssl_verify_client on, proxy_pass to the upstream over keep-alive), and
# a "direct" TLS server that answers itself with client verification. The
# gateway proxies to the same upstream and requires role `member` (cached
# identity answers from a real `mtlsid serve`). Every load presents the
# same client certificate; the load generator is `mtlsid bench http`.
# Measured: keep-alive rate, new-handshake rate, and p50 at a fixed rate.
# Usage: bench/gateway.sh [DURATION]   (default 10s per measurement)
# CLIENT=transport runs the keep-alive loads through net/http's Transport
# instead of the load tool's lean client.
# SOAK=10m holds a keep-alive load (RATE, default 10000/s) and a new
# connection per request (50/s) on the gateway for that long instead, and
# samples the gateway's memory, goroutines and open files every 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is needed: apt-get install nginx-core" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { echo $((20000 + RANDOM % 20000)); }
A=$(port) U=$(port) N=$(port) D=$(port) G=$(port)
go build -o "$work/mtlsid" ./cmd/mtlsid
m="$work/mtlsid"
data="$work/data"
"$m" ca init --data "$data" --insecure-dev-keys >/dev/null
"$m" bench seed --data "$data" --insecure-dev-keys --identities 10 --out "$work/out" >/dev/null
"$m" serve --data "$data" --insecure-dev-keys --listen "127.0.0.1:$A" --hostname 127.0.0.1 --log-level warn >/dev/null 2>"$work/serve.log" &
pids+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/shop.key" -out "$work/shop.crt" \
  -days 30 -subj /CN=shop.localhost -addext subjectAltName=DNS:shop.localhost 2>/dev/null
# Clients send their leaf only: nginx needs the issuing CA beside the root.
cat "$data/ca/root.crt" "$data/ca/issuer.crt" >"$work/clientca.pem"
user=""; [ "$(id -u)" = 0 ] && user="user root;"
# nginx_conf DIR: an nginx configuration in $work/DIR, its http block's
# servers read from standard input.
nginx_conf() {
  mkdir -p "$work/$1"
  { cat <<CONF
$user
worker_processes 2;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1/body; proxy_temp_path $work/$1/proxy; fastcgi_temp_path $work/$1/fastcgi;
  uwsgi_temp_path $work/$1/uwsgi; scgi_temp_path $work/$1/scgi;
  keepalive_requests 100000;
CONF
    cat; echo "}"; } >"$work/$1/nginx.conf"
}
nginx_conf nginx <<CONF
  upstream app { server 127.0.0.1:$U; keepalive 64; }
  server {
    listen 127.0.0.1:$N ssl; server_name shop.localhost;
    ssl_certificate $work/shop.crt; ssl_certificate_key $work/shop.key;
    ssl_client_certificate $work/clientca.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_verify_client on; ssl_verify_depth 3;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Client-Cert ":\$ssl_client_escaped_cert:";
    }
  }
  server {
    listen 127.0.0.1:$D ssl; server_name shop.localhost;
    ssl_certificate $work/shop.crt; ssl_certificate_key $work/shop.key;
    ssl_client_certificate $work/clientca.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_verify_client on; ssl_verify_depth 3;
    location / { return 200 "hello\n"; }
  }
CONF
# The upstream application is its own nginx, a separate process: inside
# the proxying nginx it would be answered in the same worker without a
# context switch, a shortcut no separate proxy (the gateway) can take.
nginx_conf up <<CONF
  server { listen 127.0.0.1:$U; location / { return 200 "hello\n"; } }
CONF
for d in nginx up; do
  "$nginx" -t -q -p "$work/$d" -c "$work/$d/nginx.conf" -e "$work/$d/error.log"
  "$nginx" -p "$work/$d" -c "$work/$d/nginx.conf" -e "$work/$d/error.log" &
  pids+=($!)
  [ $d = nginx ] && ngpid=$! || uppid=$!
done
cat >"$work/gateway.yaml" <<YAML
authority: {url: "https://127.0.0.1:$A", ca: $data/ca/root.crt}
agent: {cert: $work/out/api.cer, key: $work/out/api.key}
perimeters:
  - name: shop
    listen: 127.0.0.1:$G
    hostnames: [shop.localhost]
    tls: {cert: $work/shop.crt, key: $work/shop.key}
    client_cert: require
    upstream: http://127.0.0.1:$U
    paths: [{path: /, roles: {all_of: [member]}}]
YAML
until curl -skf "https://127.0.0.1:$A/healthz" >/dev/null 2>&1; do sleep 0.1; done
"$m" gateway --config "$work/gateway.yaml" --log-level warn ${PROFILE:+--debug-listen 127.0.0.1:6061} ${SOAK:+--debug-listen 127.0.0.1:6061} >/dev/null 2>"$work/gateway.log" &
pids+=($!)
gwpid=$!
for p in $U $N $D $G; do
  until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do sleep 0.1; done
done
cli=(--ca "$work/shop.crt" --cert "$work/out/person.cer" --key "$work/out/person.key" --duration "$dur" --client "${CLIENT:-lean}")
# One request each first: every server must answer 200 (the gateway
# because person-0 holds the role member).
for p in $N $D $G; do
  "$m" bench http --url https://shop.localhost/ --connect "127.0.0.1:$p" "${cli[@]}" --requests 1 --warmup 0s | grep -q "HTTP 200 OK" ||
    { echo "127.0.0.1:$p did not answer 200:"; cat "$work/gateway.log" "$work/nginx/error.log"; exit 1; }
done

rate_of() { awk '/^requests/ {sub("/s,","",$5); print $5}' "$1"; }
p50_of() { awk '/^latency/ {print $3}' "$1"; }
run() { # name file args...
  local name=$1 f=$2; shift 2
  "$m" bench http "$@" >"$work/$f"
  printf '%-28s %s | %s\n' "$name" "$(grep '^requests' "$work/$f")" "$(grep '^latency' "$work/$f")"
  grep -q "errors 0" "$work/$f" && ! grep -Eq "HTTP [^2]" "$work/$f" || { echo "errors or non-200 answers in $name:"; cat "$work/$f"; }
}
if [ -n "${PROFILE:-}" ]; then # PROFILE=FILE: a CPU profile of the gateway under the keep-alive load
  curl -s -o "$PROFILE" "http://127.0.0.1:6061/debug/pprof/profile?seconds=8" & prof=$!
  "$m" bench http --url https://shop.localhost/ --connect "127.0.0.1:$G" "${cli[@]}" --workers 64 --duration 10s | grep '^requests'
  wait $prof; echo "profile: $PROFILE (go tool pprof -top $work/mtlsid $PROFILE)"; cp "$m" "$PROFILE.bin"
  exit 0
fi
if [ -n "${SOAK:-}" ]; then # SOAK=DURATION: the gateway under a steady load, sampled
  sample() {
    printf '%-8s rss %6d KiB  goroutines %5s  open files %4d\n' "$1" "$(awk '/^VmRSS/ {print $2}' "/proc/$gwpid/status")" \
      "$(curl -s "http://127.0.0.1:6061/debug/pprof/goroutine?debug=1" | awk 'NR == 1 {print $4}')" "$(ls "/proc/$gwpid/fd" | wc -l)"
  }
  sample start
  soakcli=(--ca "$work/shop.crt" --cert "$work/out/person.cer" --key "$work/out/person.key" --duration "$SOAK" --warmup 0s)
  "$m" bench http --url https://shop.localhost/ --connect "127.0.0.1:$G" "${soakcli[@]}" --rate "${RATE:-10000}" --workers 64 >"$work/soak-ka.txt" & ka=$!
  "$m" bench http --url https://shop.localhost/ --connect "127.0.0.1:$G" "${soakcli[@]}" --rate 50 --workers 4 --new-conn >"$work/soak-nc.txt" & nc=$!
  t=0
  while kill -0 $ka 2>/dev/null; do
    sleep 30; t=$((t + 30)); kill -0 $ka 2>/dev/null && sample "${t}s"
  done
  wait $ka $nc
  sleep 2; sample after
  grep '^requests' "$work/soak-ka.txt" "$work/soak-nc.txt" | sed "s|$work/||"
  grep -q "errors 0" "$work/soak-ka.txt" && grep -q "errors 0" "$work/soak-nc.txt" || { echo "errors in the soak:"; cat "$work"/soak-*.txt; exit 1; }
  exit 0
fi
echo "== keep-alive, 64 workers, as fast as possible"
run "nginx (proxy)" ka-nginx.txt --url https://shop.localhost/ --connect "127.0.0.1:$N" "${cli[@]}" --workers 64
run "mtlsid gateway" ka-gw.txt --url https://shop.localhost/ --connect "127.0.0.1:$G" "${cli[@]}" --workers 64
echo "== new TLS handshake per request, 16 workers"
run "nginx (proxy)" nc-nginx.txt --url https://shop.localhost/ --connect "127.0.0.1:$N" "${cli[@]}" --workers 16 --new-conn
run "mtlsid gateway" nc-gw.txt --url https://shop.localhost/ --connect "127.0.0.1:$G" "${cli[@]}" --workers 16 --new-conn
echo "== latency at 1,000/s, keep-alive"
run "upstream, plain HTTP" lat-up.txt --url "http://127.0.0.1:$U/" --duration "$dur" --rate 1000 --workers 16
run "nginx answering, TLS" lat-direct.txt --url https://shop.localhost/ --connect "127.0.0.1:$D" "${cli[@]}" --rate 1000 --workers 16
run "nginx (proxy)" lat-nginx.txt --url https://shop.localhost/ --connect "127.0.0.1:$N" "${cli[@]}" --rate 1000 --workers 16
run "mtlsid gateway" lat-gw.txt --url https://shop.localhost/ --connect "127.0.0.1:$G" "${cli[@]}" --rate 1000 --workers 16
echo "== CPU per request at 5,000/s, keep-alive (user+system time of the processes)"
ticks() { # the CPU clock ticks used so far by the given processes and their children
  local t=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
hz=$(getconf CLK_TCK)
cpu() { # name port proxy-pid...
  local name=$1 port=$2; shift 2
  local p0 u0 p1 u1
  p0=$(ticks "$@") u0=$(ticks "$uppid")
  "$m" bench http --url https://shop.localhost/ --connect "127.0.0.1:$port" "${cli[@]}" --rate 5000 --workers 32 --warmup 0s >"$work/cpu.txt"
  p1=$(ticks "$@") u1=$(ticks "$uppid")
  local n; n=$(awk '/^requests/ {print $2}' "$work/cpu.txt")
  awk -v n="$n" -v p=$((p1 - p0)) -v u=$((u1 - u0)) -v hz="$hz" -v name="$name" \
    'BEGIN {printf "%-28s %d requests: proxy %.1f us/request, upstream %.1f us/request\n", name, n, p*1e6/hz/n, u*1e6/hz/n}' | tee -a "$work/cpu-all.txt"
}
cpu "nginx (proxy)" "$N" "$ngpid"
cpu "mtlsid gateway" "$G" "$gwpid"

echo
echo "== ratios (gateway / nginx)"
awk -v a="$(rate_of "$work/ka-gw.txt")" -v b="$(rate_of "$work/ka-nginx.txt")" 'BEGIN {printf "keep-alive rate     %.2f  (target >= 0.90)\n", a/b}'
awk -v a="$(rate_of "$work/nc-gw.txt")" -v b="$(rate_of "$work/nc-nginx.txt")" 'BEGIN {printf "new handshakes/s    %.2f  (target >= 0.80)\n", a/b}'
awk '/^nginx/ {n=$6} /^mtlsid/ {g=$6} END {printf "proxy CPU/request   %.2f  (gateway / nginx)\n", g/n}' "$work/cpu-all.txt"
echo "p50 at 1,000/s: upstream direct $(p50_of "$work/lat-up.txt"), TLS direct $(p50_of "$work/lat-direct.txt"), nginx proxy $(p50_of "$work/lat-nginx.txt"), gateway $(p50_of "$work/lat-gw.txt")"
