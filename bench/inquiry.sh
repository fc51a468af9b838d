#!/usr/bin/env bash
# Identity-Inquiry throughput and latency: seeds N identities, starts
# `mtlsid serve`, and loads it from a separate process (`mtlsid bench
# inquiry`) over keep-alive mTLS on loopback: first as fast as it goes,
# then at a fixed rate (default half of that) for the latency. Twice: over
# all N serials (each asked about rarely, so mostly answered from the
# database) and over 1,000 of them (answered from the authority's cache).
# Usage: bench/inquiry.sh [sqlite|postgres] [IDENTITIES] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-sqlite}
n=${2:-100000}
dur=${3:-15s}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/mtlsid" ./cmd/mtlsid
db=()
if [ "$store" = postgres ]; then
  schema="bench_$$"
  psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema"
  trap 'kill $pid 2>/dev/null || true; psql -q -h 127.0.0.1 -U postgres -d test -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"; rm -rf "$work"' EXIT
  db=(--database "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema")
fi
data="$work/data"
port=$((20000 + RANDOM % 20000))
"$work/mtlsid" ca init --data "$data" --insecure-dev-keys "${db[@]}" >/dev/null
"$work/mtlsid" bench seed --data "$data" --insecure-dev-keys "${db[@]}" --identities "$n" --out "$work/out"
env ${SERVE_ENV:-} "$work/mtlsid" serve --data "$data" --insecure-dev-keys "${db[@]}" --listen "127.0.0.1:$port" --hostname 127.0.0.1 --log-level warn >/dev/null 2>"$work/serve.log" & pid=$!
until curl -skf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.1; done
common=(--server "https://127.0.0.1:$port" --ca "$data/ca/root.crt" --cert "$work/out/api.cer" --key "$work/out/api.key" --duration "$dur")
head -1000 "$work/out/serials.txt" >"$work/out/hot.txt"
for set in serials hot; do
  echo
  echo "== $store, $n identities stored, asking about $(wc -l <"$work/out/$set.txt") of them: as fast as possible"
  "$work/mtlsid" bench inquiry "${common[@]}" --serials "$work/out/$set.txt" | tee "$work/max.txt"
  rate=${RATE:-$(awk '/^requests/ {sub("/s,","",$5); printf "%d", $5/2}' "$work/max.txt")}
  echo "== $store, same serials, at $rate/s (half that) for the latency"
  "$work/mtlsid" bench inquiry "${common[@]}" --serials "$work/out/$set.txt" --rate "$rate"
done
