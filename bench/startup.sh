#!/usr/bin/env bash
# Measures how long `mtlsid serve` takes to answer /healthz on an existing
# data directory, and its resident memory once idle. Loopback only.
# Usage: bench/startup.sh [RUNS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/mtlsid" ./cmd/mtlsid
port=$((20000 + RANDOM % 20000))
args=(serve --data "$work/data" --listen "127.0.0.1:$port" --hostname 127.0.0.1)

# First start: creates the CA, the database and the serving certificate.
"$work/mtlsid" "${args[@]}" >/dev/null 2>&1 & pid=$!
until curl -skf "https://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.05; done
kill $pid; wait $pid 2>/dev/null || true

times=()
for _ in $(seq "$runs"); do
  start=$(date +%s%N)
  "$work/mtlsid" "${args[@]}" >/dev/null 2>&1 & pid=$!
  until curl -skf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.005; done
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000000 )))
  sleep 2
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null || true
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "start to first /healthz answer, ms: ${sorted[*]}"
echo "median: ${sorted[$((runs / 2))]} ms, max: ${sorted[$((runs - 1))]} ms"
echo "idle RSS after 2 s (last run): $((rss / 1024)) MB ($rss kB)"
