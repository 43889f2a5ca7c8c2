#!/usr/bin/env bash
# Faithfulness check of the virtual card: OpenSC, which nobody here wrote, must recognise it as a
# My Number Card (its `jpki` driver), show both JPKI tokens and sign with both keys; the
# signatures must verify with openssl against the certificates read back through OpenSC.
# Runs inside tests/harness/with-card.sh (both profiles).
set -euo pipefail
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"
opensc=${OPENSC_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN}}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
p11() { pkcs11-tool --module "$opensc" "$@"; }

check "opensc-tool identifies the card as jpki" [ "$(opensc-tool --reader 0 --name)" = jpki ]
p11 -L >"$w/slots" || true
check "OpenSC shows the authentication token" grep -q 'JPKI (User Authentication PIN)' "$w/slots"
check "OpenSC shows the signature token" grep -q 'JPKI (Digital Signature PIN)' "$w/slots"
p11 -O >"$w/objects" || true
check "OpenSC lists the authentication certificate" grep -q 'User Authentication Certificate' "$w/objects"
if grep -q 'Digital Signature Certificate$' "$w/objects"; then
    not_ok "the signature certificate is listed without the password"
else
    ok "OpenSC does not list the signature certificate before login"
fi

echo "a message signed by the virtual My Number Card" >"$w/msg"
sign_and_verify() { # slot-index pin id name
    p11 --slot-index "$1" --login --pin "$2" --id "$3" -s -m SHA256-RSA-PKCS \
        -i "$w/msg" -o "$w/$4.sig" >/dev/null 2>&1 &&
        p11 --slot-index "$1" --login --pin "$2" --read-object --type cert --id "$3" \
            -o "$w/$4.der" >/dev/null 2>&1 &&
        openssl x509 -inform DER -in "$w/$4.der" -pubkey -noout >"$w/$4.pub" &&
        openssl dgst -sha256 -verify "$w/$4.pub" -signature "$w/$4.sig" "$w/msg" >/dev/null
}
for args in "0 1234 01 authentication" "1 ABC123 02 signature"; do
    set -- $args
    check "OpenSC signs with the $4 key (SHA256-RSA-PKCS) and openssl verifies it" sign_and_verify "$@"
done

# The certificates chain to the card's CA certificates, as read through OpenSC.
p11 --read-object --type cert --id 03 -o "$w/auth_ca.der" >/dev/null 2>&1 || true
p11 --read-object --type cert --id 04 -o "$w/sign_ca.der" >/dev/null 2>&1 || true
for n in authentication signature auth_ca sign_ca; do
    openssl x509 -inform DER -in "$w/$n.der" -out "$w/$n.pem" || true
done
check "auth certificate chains to the auth CA" openssl verify -CAfile "$w/auth_ca.pem" "$w/authentication.pem"
check "signature certificate chains to the signature CA" openssl verify -CAfile "$w/sign_ca.pem" "$w/signature.pem"

if [ "${JPKI_TEST_PROFILE:-}" = extended ]; then
    p11 --slot-index 0 --login --pin 1234 --test >"$w/test" 2>&1 || true
    check "pkcs11-tool --test over OpenSC: No errors (extended profile)" grep -q 'No errors' "$w/test"
fi
stats=$("$vc" ctl --control "$JPKI_TEST_CONTROL" stats)
check "no malformed PIN reached the card" grep -q '"malformed_verify_count":0' <<<"$stats"
check_done
