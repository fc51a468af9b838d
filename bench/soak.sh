#!/usr/bin/env bash
# Soak: seeds N identities, starts `mtlsid serve`, measures its Identity-
# Inquiry capacity for 15 s, then holds half of that rate for DURATION
# (default 10m, the most `mtlsid bench` runs) while sampling the server's
# resident memory, goroutines and open file descriptors every 30 s. The
# run passes when the load reports no error; read the samples for
# flatness (docs/reliability.md keeps the last run).
# Usage: bench/soak.sh [sqlite|postgres] [IDENTITIES] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-sqlite}
n=${2:-10000}
dur=${3:-10m}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/mtlsid" ./cmd/mtlsid
db=()
if [ "$store" = postgres ]; then
  schema="soak_$$"
  psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema"
  trap 'cleanup; psql -q -h 127.0.0.1 -U postgres -d test -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"' EXIT
  db=(--database "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema")
fi
data="$work/data"
port=$((20000 + RANDOM % 20000))
"$work/mtlsid" ca init --data "$data" --insecure-dev-keys "${db[@]}" >/dev/null
"$work/mtlsid" bench seed --data "$data" --insecure-dev-keys "${db[@]}" --identities "$n" --out "$work/out" >/dev/null
"$work/mtlsid" serve --data "$data" --insecure-dev-keys "${db[@]}" --listen "127.0.0.1:$port" --hostname 127.0.0.1 --log-level warn >/dev/null 2>"$work/serve.log" & pid=$!
until curl -skf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.1; done
common=(--server "https://127.0.0.1:$port" --ca "$data/ca/root.crt" --cert "$work/out/api.cer" --key "$work/out/api.key" --serials "$work/out/serials.txt")
echo "== capacity ($store, $n identities), 15 s"
"$work/mtlsid" bench inquiry "${common[@]}" --duration 15s | tee "$work/max.txt"
rate=${RATE:-$(awk '/^requests/ {sub("/s,","",$5); printf "%d", $5/2}' "$work/max.txt")}
sample() {
  local rss fds gor
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  gor=$(curl -sk "https://127.0.0.1:$port/metrics" | awk '/^go_goroutines / {print $2}')
  printf '%s  rss %6d KiB  goroutines %5s  fds %4d\n' "$(date -u +%H:%M:%S)" "$rss" "$gor" "$fds"
}
echo "== soak at $rate/s for $dur; samples every 30 s"
"$work/mtlsid" bench inquiry "${common[@]}" --rate "$rate" --duration "$dur" --warmup 0s >"$work/soak.txt" & load=$!
sample
while kill -0 "$load" 2>/dev/null; do
  for _ in $(seq 1 30); do sleep 1; kill -0 "$load" 2>/dev/null || break; done
  sample
done
wait "$load"
cat "$work/soak.txt"
if grep -Eq "errors [1-9]" "$work/soak.txt"; then echo "soak: FAILED (errors)"; exit 1; fi
echo "soak: no error"
