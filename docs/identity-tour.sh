#!/usr/bin/env bash
# The Identity API tour, end to end, on a fresh authority of its own:
# create an organization and a service, issue a development API
# certificate, enroll a person's device, inquire (PB 0003), run a discover
# intent through the sign-on page with the device certificate, inquire
# again (OK, with roles), bind a local user, revoke the development
# certificate, and see the binding and the roles it granted gone.
#
# Usage: docs/identity-tour.sh [extra serve flags, e.g. --database postgres://...]
# Set MTLSID to a built binary to skip the build. Needs curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$W"' EXIT
MTLSID=${MTLSID:-}
if [ -z "$MTLSID" ]; then go build -o "$W/mtlsid" ./cmd/mtlsid; MTLSID="$W/mtlsid"; fi
step() { printf '\n== %s\n' "$*"; }
expect() { # expect WHAT TEXT PATTERN
  if ! grep -q -- "$3" <<<"$2"; then printf 'FAILED: %s: expected %s in:\n%s\n' "$1" "$3" "$2"; exit 1; fi
  echo "ok: $1"
}

step "start an authority"
port=$((20000 + RANDOM % 20000))
URL="https://127.0.0.1:$port"
"$MTLSID" serve --data "$W/data" --insecure-dev-keys --listen "127.0.0.1:$port" --hostname 127.0.0.1 \
  --base-domain mtls.local "$@" >"$W/serve.out" 2>"$W/serve.log" & pid=$!
for _ in $(seq 100); do grep -q mtid_ "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep -o 'mtid_[A-Za-z0-9_-]*' "$W/serve.out" | head -1)
CA="$W/data/ca/root.crt"
ADMIN=(--server "$URL" --dir "$W/admin" --name admin)

step "the administrator enrolls, creates organization acme and service shop"
"$MTLSID" enroll "$TOKEN" --ca "$CA" "${ADMIN[@]}"
"$MTLSID" org create acme "${ADMIN[@]}"
"$MTLSID" service create shop --org acme "${ADMIN[@]}"
out=$("$MTLSID" domain list --service shop.acme "${ADMIN[@]}")
expect "default domain verified" "$out" "shop.acme.mtls.local"
"$MTLSID" role define customer --service shop.acme "${ADMIN[@]}"

step "API certificates: one development, one production"
"$MTLSID" apicert issue --service shop.acme --dev --agent-name dev --out "$W/api" "${ADMIN[@]}"
"$MTLSID" apicert issue --service shop.acme --agent-name prod --out "$W/api" "${ADMIN[@]}"
DEV=(--cacert "$CA" --cert "$W/api/dev.cer" --key "$W/api/dev.key")
PROD_CLI=(--server "$URL" --dir "$W/api" --name prod)
DEV_CLI=(--server "$URL" --dir "$W/api" --name dev)
DEV_SERIAL=$(openssl x509 -in "$W/api/dev.cer" -noout -serial | cut -d= -f2)

step "a person enrolls a device"
PTOKEN=$("$MTLSID" token create --data "$W/data" --insecure-dev-keys -q "$@")
"$MTLSID" enroll "$PTOKEN" --ca "$CA" --server "$URL" --dir "$W/alice" --name alice-laptop
ALICE=$(openssl x509 -in "$W/alice/alice-laptop.cer" -noout -serial | cut -d= -f2)
ALICE_TLS=(--cacert "$CA" --cert "$W/alice/alice-laptop.cer" --key "$W/alice/alice-laptop.key")

step "inquire: the person never shared their identity with shop"
out=$("$MTLSID" inquire "0x$ALICE" "${DEV_CLI[@]}")
expect "inquiry before sign-on" "$out" "PB 0003"

step "discover intent, then the sign-on page with the device certificate"
out=$(curl -s "${DEV[@]}" -X PUT "$URL/v1" -d '{"Intent":{"type":"discover","return-url":"https://shop.acme.mtls.local/welcome"}}')
REF=$(grep -o '"value":"[^"]*"' <<<"$out" | cut -d'"' -f4)
expect "intent reference" "$out" "Intent-Reference"
# Like a browser: keep the page's cookie and send the form's CSRF token.
page=$(curl -s -c "$W/cookies" "${ALICE_TLS[@]}" "$URL/signon/$REF")
expect "consent page" "$page" "Share your identity with shop.acme"
CSRF=$(grep -o 'name="csrf" value="[^"]*"' <<<"$page" | cut -d'"' -f4)
loc=$(curl -s -b "$W/cookies" -o /dev/null -w '%{redirect_url}' "${ALICE_TLS[@]}" -X POST -d consent=yes -d "csrf=$CSRF" "$URL/signon/$REF")
expect "redirect back to the service" "$loc" "https://shop.acme.mtls.local/welcome?identity-plus-intent=$REF"
out=$("$MTLSID" inquire "$REF" "${DEV_CLI[@]}")
expect "inquiry by the intent reference" "$out" "OK 0001"

step "grant a role with the development certificate, bind a local user"
"$MTLSID" role grant "0x$ALICE" customer --service shop.acme "${DEV_CLI[@]}"
out=$("$MTLSID" inquire "0x$ALICE" "${DEV_CLI[@]}")
expect "inquiry with roles" "$out" '"customer"'
expect "inquiry after sign-on" "$out" "OK 0001"
out=$(curl -s "${DEV[@]}" -X PUT "$URL/v1" -d "{\"Local-User-Information\":{\"serial-number\":\"0x$ALICE\",\"local-user-name\":\"alice\"}}")
expect "local user bound" "$out" "OK 0100"
out=$("$MTLSID" inquire "0x$ALICE" "${PROD_CLI[@]}")
expect "inquiry with the local user" "$out" '"local-user-name": "alice"'

step "revoke the development certificate: its changes are undone"
"$MTLSID" apicert revoke "0x$DEV_SERIAL" "${ADMIN[@]}"
out=$("$MTLSID" inquire "0x$ALICE" "${PROD_CLI[@]}")
expect "still valid" "$out" "OK 0001"
if grep -q '"customer"\|"alice"' <<<"$out"; then printf 'FAILED: role or binding survived:\n%s\n' "$out"; exit 1; fi
echo "ok: role and binding gone"
out=$("$MTLSID" inquire "0x$ALICE" "${DEV_CLI[@]}")
expect "the revoked certificate is refused" "$out" "ER 1103"
"$MTLSID" audit verify --data "$W/data" "$@"
echo
echo "tour complete"
