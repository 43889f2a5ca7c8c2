#!/usr/bin/env bash
# Faithfulness check of the virtual card: OpenSC, which nobody here wrote, must recognise it as a
# My Number Card (its `jpki` driver), show both JPKI tokens and sign with both keys; the
# signatures must verify with openssl against the certificates read back through OpenSC.
# Runs inside tests/harness/with-card.sh (all profiles).
#
# Phone profile (the Android token, auth certificate behind the auth PIN): OpenSC 0.23 finds it
# by the SELECT-AID probe, names it jpki and shows both tokens, but its jpki emulation reads the
# authentication certificate while binding, gets 6982, and then lists no certificate at all,
# not even the CA certificates (nor after login); the authentication public key shows as "RSA 0 bits" (MODULUS_BITS fails with
# CKR_GENERAL_ERROR) and the token still claims CKP_PUBLIC_CERTIFICATES_TOKEN. Signing with both
# keys works. This script checks exactly that, and verifies the signatures against the
# certificates exported from the card's state file.
set -euo pipefail
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
opensc=${OPENSC_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN}}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
p11() { pkcs11-tool --module "$opensc" "$@"; }

check "opensc-tool identifies the card as jpki" [ "$(opensc-tool --reader 0 --name)" = jpki ]
# A failing pkcs11-tool leaves its output file short: the checks on it then fail and say what.
p11 -L >"$w/slots" 2>&1 || true
check "OpenSC shows the authentication token" grep -q 'JPKI (User Authentication PIN)' "$w/slots"
check "OpenSC shows the signature token" grep -q 'JPKI (Digital Signature PIN)' "$w/slots"
p11 -O >"$w/objects" 2>"$w/objects.err" || true
if [ "${JPKI_TEST_PROFILE:-}" = phone ]; then
    check "OpenSC cannot list the phone's authentication certificate (6982 before the PIN)" \
        bash -c "! grep -q 'User Authentication Certificate' '$w/objects'"
    "$vc" export --state "$JPKI_TEST_STATE" --out "$w/export" >/dev/null
else
    check "OpenSC lists the authentication certificate" grep -q 'User Authentication Certificate' "$w/objects"
fi
check "OpenSC does not list the signature certificate before login" \
    bash -c "! grep -q 'Digital Signature Certificate\$' '$w/objects'"

echo "a message signed by the virtual My Number Card" >"$w/msg"
sign_and_verify() { # slot-index pin id name; run by `check` (set -e is off there: each step says || return)
    p11 --slot-index "$1" --login --pin "$2" --id "$3" -s -m SHA256-RSA-PKCS \
        -i "$w/msg" -o "$w/$4.sig" >/dev/null 2>&1 || return 1
    if [ "${JPKI_TEST_PROFILE:-}" = phone ]; then
        case $4 in authentication) cp "$w/export/auth_cert.der" "$w/$4.der" || return 1 ;;
                   *) cp "$w/export/sign_cert.der" "$w/$4.der" || return 1 ;; esac
    else
        p11 --slot-index "$1" --login --pin "$2" --read-object --type cert --id "$3" \
            -o "$w/$4.der" >/dev/null 2>&1 || return 1
    fi
    openssl x509 -inform DER -in "$w/$4.der" -pubkey -noout >"$w/$4.pub" || return 1
    openssl dgst -sha256 -verify "$w/$4.pub" -signature "$w/$4.sig" "$w/msg" >/dev/null
}
check "OpenSC signs with the authentication key (SHA256-RSA-PKCS) and openssl verifies it" \
    sign_and_verify 0 1234 01 authentication
check "OpenSC signs with the signature key (SHA256-RSA-PKCS) and openssl verifies it" \
    sign_and_verify 1 ABC123 02 signature

# The certificates chain to the card's CA certificates, as read through OpenSC (phone: as
# exported, since OpenSC lists none there).
if [ "${JPKI_TEST_PROFILE:-}" = phone ]; then
    if p11 --read-object --type cert --id 03 -o "$w/auth_ca.der" >/dev/null 2>&1; then
        echo "# OpenSC now reads the phone's CA certificates: update the note at the top"
    fi
    cp "$w/export/auth_ca_cert.der" "$w/auth_ca.der"
    cp "$w/export/sign_ca_cert.der" "$w/sign_ca.der"
else
    p11 --read-object --type cert --id 03 -o "$w/auth_ca.der" >/dev/null 2>&1 || true
    p11 --read-object --type cert --id 04 -o "$w/sign_ca.der" >/dev/null 2>&1 || true
fi
# A certificate that could not be read or converted makes the chain checks below fail.
for n in authentication signature auth_ca sign_ca; do
    openssl x509 -inform DER -in "$w/$n.der" -out "$w/$n.pem" 2>/dev/null || true
done
check "auth certificate chains to the auth CA" openssl verify -CAfile "$w/auth_ca.pem" "$w/authentication.pem"
check "signature certificate chains to the signature CA" openssl verify -CAfile "$w/sign_ca.pem" "$w/signature.pem"

if [ "${JPKI_TEST_PROFILE:-}" = extended ]; then
    p11 --slot-index 0 --login --pin 1234 --test >"$w/test" 2>&1 || true
    check "pkcs11-tool --test over OpenSC: No errors (extended profile)" grep -q 'No errors' "$w/test"
fi
stats=$("$vc" ctl --control "$JPKI_TEST_CONTROL" stats) || true
check "no malformed PIN reached the card" grep -q '"malformed_verify_count":0' <<<"$stats"
check_done
