#!/usr/bin/env bash
# The smartphone's JPKI token in a PC reader (issue 15), on the virtual card's `phone` profile:
# the authentication certificate and public key are not visible before login and are after;
# the authentication token does not claim CKP_PUBLIC_CERTIFICATES_TOKEN; label and serial come
# from EF 0006 (readable before login), so they cannot change at login; both keys
# sign (checked with openssl against the public keys read through the module); the usage
# history names the phone's token. Clients on this profile: pkcs11-tool.sh, tls.sh, firefox.sh
# and jpki-cli.sh run with --profile phone too (tests/run-all.sh's phone pass).
#
#   tests/harness/with-card.sh --profile phone -- bash tests/integration/phone.sh
set -uo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib/check.bash"
source "$here/lib/paths.bash"
if [ "${JPKI_TEST_PROFILE:-}" != phone ]; then
    echo "# SKIP: phone.sh runs on the phone profile only (this is ${JPKI_TEST_PROFILE:-unset})"
    exit 0
fi
need_module
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_STATE_HOME=$work/state
AUTH_PIN=1234
SIGN_PIN=ABC123
p11() { pkcs11-tool --module "$module" "$@"; }
has() { if grep -q -- "$2" "$3"; then ok "$1"; else not_ok "$1 (no '$2')"; sed 's/^/    /' "$3" | tail -20; fi; }
lacks() { if grep -q -- "$2" "$3"; then not_ok "$1 ('$2' present)"; sed 's/^/    /' "$3" | tail -20; else ok "$1"; fi; }
serial=$(python3 -c "import json; print(json.load(open('$JPKI_TEST_STATE'))['token_serial'].strip())")

p11 -L >"$work/L" 2>&1
has "token serial is EF 0006's" "serial num         : $serial" "$work/L"
has "auth token label tagged from EF 0006" "token label        : JPKI Auth ${serial: -8}" "$work/L"
has "sign token label tagged from EF 0006" "token label        : JPKI Sign ${serial: -8}" "$work/L"

p11 --slot 0 -O >"$work/O0" 2>&1
lacks "before login: no authentication certificate" "label:      JPKI User Authentication$" "$work/O0"
lacks "before login: no CKP_PUBLIC_CERTIFICATES_TOKEN on the auth token" "CKP_PUBLIC_CERTIFICATES_TOKEN" "$work/O0"
has "before login: the CA certificate (public)" "JPKI User Authentication CA" "$work/O0"
p11 --slot 0 --login --pin "$AUTH_PIN" -O >"$work/O0l" 2>&1
has "after login: authentication certificate" "Certificate Object; type = X.509 cert" "$work/O0l"
has "after login: authentication certificate by label" "label:      JPKI User Authentication$" "$work/O0l"
has "after login: public key" "Public Key Object; RSA 2048 bits" "$work/O0l"
has "after login: private key" "Private Key Object; RSA" "$work/O0l"
head -c 1000 /dev/urandom >"$work/data"
for t in "0 $AUTH_PIN 01 auth" "1 $SIGN_PIN 02 sign"; do
    read -r slot pin id name <<<"$t"
    p11 --slot "$slot" --login --pin "$pin" --read-object --type pubkey --id "$id" -o "$work/$name.der" >/dev/null 2>&1
    openssl pkey -pubin -inform DER -in "$work/$name.der" -out "$work/$name.pub" 2>/dev/null
    check "$name public key readable after login" test -s "$work/$name.pub"
    check "$name key signs (SHA256-RSA-PKCS)" p11 --slot "$slot" --login --pin "$pin" --sign \
        -m SHA256-RSA-PKCS --id "$id" -i "$work/data" -o "$work/$name.sig"
    check "$name signature verifies" openssl dgst -sha256 -verify "$work/$name.pub" \
        -signature "$work/$name.sig" "$work/data"
done
check "history names the phone's tokens" python3 - "$XDG_STATE_HOME/jpki-pkcs11/history.jsonl" "$serial" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])]
s = [x for x in e if x["event"] == "sign" and x["result"] == "ok"]
assert {x["key"] for x in s} == {"auth", "sign"}, s
assert all(x["serial"] == sys.argv[2] for x in s), s
PY
check_done
