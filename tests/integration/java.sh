#!/usr/bin/env bash
# Java (OpenJDK 17, SunPKCS11) against the module: one provider config per token, keytool lists
# each token's key entry with its chain, jarsigner signs a jar with the signature key and
# jarsigner -verify accepts it (also with -strict against a trust store holding the signature CA,
# which Java read from the token itself).
#
# Runs inside tests/harness/with-card.sh. Needs openjdk-17-jdk-headless (keytool, jarsigner, jar).
# PINs are typed at keytool's and jarsigner's own password prompts (here: written to their stdin,
# no terminal), as in the README; no -storepass on the command line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

: "${JPKI_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${JPKI_MODULE:=$JPKI_ROOT/target/release/libjpki_pkcs11.so}"
: "${JPKI_VC:=${JPKI_TEST_CARD_BIN:-$JPKI_ROOT/target/debug/jpki-virtual-card}}"
[ "${JPKI_PCSC_TEST:-}" = 1 ] || { echo "java.sh: run me inside tests/harness/with-card.sh" >&2; exit 2; }
[ -r "$JPKI_MODULE" ] || { echo "java.sh: module $JPKI_MODULE not found" >&2; exit 2; }
for tool in keytool jarsigner jar; do
    command -v "$tool" >/dev/null || { echo "java.sh: $tool missing (apt-get install openjdk-17-jdk-headless)" >&2; exit 2; }
done
module=$(realpath "$JPKI_MODULE")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jpki-java.XXXXXX")
trap 'rc=$?; rm -rf "$tmp"; exit $rc' EXIT INT TERM
cd "$tmp"

ctl() { "$JPKI_VC" ctl --control "$JPKI_TEST_CONTROL" "$@"; }
stat_field() { ctl stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
tries() { ctl status | sed -n "s/.*$1_tries_left=\([0-9]*\).*/\1/p"; }
# COMPUTE DIGITAL SIGNATURE P1=00 with P2 = 80 (current EF) or 80|SFI (97, 9A: the key named).
sign_lcs() { awk 'tolower($2) ~ /^802a00(80|97|9a)/ { print substr($2, 9, 2) }' "$JPKI_TEST_APDU_LOG" | tr '\n' ' '; }

# One SunPKCS11 provider = one slot. slotListIndex counts C_GetSlotList(CK_FALSE): the first
# reader's authentication token is 0, its signature token 1 (include/jpki-pkcs11.h).
cat > jpki-auth.cfg <<CFG
name = JPKI-Auth
library = $module
slotListIndex = 0
CFG
cat > jpki-sign.cfg <<CFG
name = JPKI-Sign
library = $module
slotListIndex = 1
CFG
p11() { echo -keystore NONE -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 -providerArg "$tmp/$1"; }

# --- keytool -list ----------------------------------------------------------------------------
# shellcheck disable=SC2046
if echo 1234 | keytool -list -v $(p11 jpki-auth.cfg) > auth.list 2>&1; then
    ok "keytool -list opens the authentication token (PIN 1234)"
else
    not_ok "keytool -list opens the authentication token ($(tail -3 auth.list | tr '\n' ' '))"
fi
check "keytool: auth token holds one entry" grep -q "Your keystore contains 1 entry" auth.list
check "keytool: alias 'JPKI User Authentication' is a PrivateKeyEntry" \
    bash -c "grep -A1 '^Alias name: JPKI User Authentication\$' auth.list | grep -q 'Entry type: PrivateKeyEntry'"
check "keytool: auth chain has 2 certificates (user + CA from the token)" \
    grep -q "Certificate chain length: 2" auth.list
check "keytool: auth chain ends at the JPKI user-authentication CA" \
    grep -q "Owner: OU=Japan Agency for Local Authority Information Systems, OU=JPKI for user authentication, O=JPKI, C=JP" auth.list

# shellcheck disable=SC2046
if echo ABC123 | keytool -list -v $(p11 jpki-sign.cfg) > sign.list 2>&1; then
    ok "keytool -list opens the signature token (password ABC123)"
else
    not_ok "keytool -list opens the signature token ($(tail -3 sign.list | tr '\n' ' '))"
fi
check "keytool: sign token holds one entry" grep -q "Your keystore contains 1 entry" sign.list
check "keytool: alias 'JPKI Digital Signature' is a PrivateKeyEntry" \
    bash -c "grep -A1 '^Alias name: JPKI Digital Signature\$' sign.list | grep -q 'Entry type: PrivateKeyEntry'"
check "keytool: sign chain has 2 certificates" grep -q "Certificate chain length: 2" sign.list
check "keytool: two VERIFYs, none failed" \
    bash -c "test $(stat_field verify_count) -eq 2 && test $(stat_field failed_verify_count) -eq 0"

# The auth PIN given to the signature token (a 4-digit password cannot be right there) is
# refused by the module before any VERIFY: Java reports the error, the card loses no try.
verify_before=$(stat_field verify_count)
# shellcheck disable=SC2046
if echo 1234 | keytool -list -v $(p11 jpki-sign.cfg) > wrong.list 2>&1; then
    not_ok "keytool with a 4-digit password on the signature token fails"
else
    ok "keytool with a 4-digit password on the signature token fails"
fi
# C_Login answers CKR_PIN_INCORRECT for it, the specification's code (docs/conformance.md);
# no VERIFY and the unchanged counter prove it never reached the card.
check "  ... with CKR_PIN_INCORRECT, no VERIFY sent, 5 tries left" \
    bash -c "grep -q CKR_PIN_INCORRECT wrong.list && test $(stat_field verify_count) -eq $verify_before && test $(tries sign) -eq 5"

# --- jarsigner ----------------------------------------------------------------------------------
echo "signed by a My Number Card through jpki-pkcs11" > hello.txt
jar cf test.jar hello.txt
sigs_before=$(stat_field signatures)
lcs_before=$(sign_lcs)
# shellcheck disable=SC2046
if echo ABC123 | jarsigner $(p11 jpki-sign.cfg) test.jar "JPKI Digital Signature" > sign.out 2>&1; then
    ok "jarsigner signs a jar with the signature key"
else
    not_ok "jarsigner signs a jar with the signature key ($(tail -5 sign.out | tr '\n' ' '))"
fi
check "jarsigner: the card made one signature" test "$(stat_field signatures)" -eq $((sigs_before + 1))
lcs_new=$(sign_lcs); lcs_new=${lcs_new#"$lcs_before"}
check "jarsigner: the card signed a 51-byte SHA-256 DigestInfo" test "$lcs_new" = "33 "
check "jarsigner wrote the signature block" bash -c "unzip -l test.jar | grep -q 'META-INF/JPKI_DIG.RSA'"

jarsigner -verify -verbose -certs test.jar > verify.out 2>&1 || true
check "jarsigner -verify: jar verified" grep -q "^jar verified\.$" verify.out
check "jarsigner -verify: signed by the card's signature certificate (L=Kiyose-shi)" \
    grep -q 'Signed by "CN=.*, L=Kiyose-shi, C=JP"' verify.out
check "jarsigner -verify: hello.txt carries a verified signature (s)" grep -Eq '^sm[k ]* .*hello\.txt' verify.out

# The signature CA as Java read it from the token (second certificate of the chain).
# shellcheck disable=SC2046
echo ABC123 | keytool -list -rfc $(p11 jpki-sign.cfg) > chain.pem 2>&1
awk '/BEGIN CERTIFICATE/ { n++ } n == 2' chain.pem | sed '/END CERTIFICATE/q' > sign-ca.pem
check "the signature CA came from the token" \
    bash -c "openssl x509 -in sign-ca.pem -noout -subject | grep -q 'OU = JPKI for digital signature'"
keytool -importcert -noprompt -alias jpki-sign-ca -file sign-ca.pem -keystore trust.p12 \
    -storetype PKCS12 -storepass changeit >/dev/null 2>&1
if jarsigner -verify -strict -keystore trust.p12 -storepass changeit test.jar > strict.out 2>&1; then
    ok "jarsigner -verify -strict accepts the jar with the JPKI signature CA trusted"
else
    not_ok "jarsigner -verify -strict with the CA trusted ($(tr '\n' ' ' < strict.out))"
fi
check "  ... and reports no chain problem" bash -c "! grep -qi 'chain is invalid\|not validated' strict.out"

# An independent check: OpenSSL verifies the PKCS#7 block over the signature file.
unzip -q -o test.jar META-INF/JPKI_DIG.SF META-INF/JPKI_DIG.RSA
check "openssl cms verifies the jar's PKCS#7 signature against the CA" \
    bash -c "openssl cms -verify -inform DER -in META-INF/JPKI_DIG.RSA -content META-INF/JPKI_DIG.SF \
        -binary -CAfile sign-ca.pem -purpose any -out /dev/null 2>/dev/null"

check "whole suite: no malformed PIN reached the card" test "$(stat_field malformed_verify_count)" -eq 0
check "whole suite: both PINs keep their tries" bash -c "test $(tries auth) -eq 3 && test $(tries sign) -eq 5"

check_done
