#!/usr/bin/env bash
# PDF signing with pyHanko (python-pkcs11 underneath) and the card's signature key, then
# `pyhanko sign validate` with the signature CA read from the token through the module as the
# only trust root. Two signatures: pyHanko's default hash-on-token mechanism
# (CKM_SHA256_RSA_PKCS) and --raw-mechanism (pyHanko hashes, CKM_RSA_PKCS over its DigestInfo).
#
# Runs inside tests/harness/with-card.sh. Needs PyPI pyhanko[pkcs11] + pyhanko-cli
# (tests/deps/pip-requirements.txt) and pkcs11-tool (opensc) to read the CA certificate.
# The password is typed at pyHanko's own prompt (here: written to its stdin, no terminal).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

: "${JPKI_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${JPKI_MODULE:=$JPKI_ROOT/target/release/libjpki_pkcs11.so}"
: "${JPKI_VC:=${JPKI_TEST_CARD_BIN:-$JPKI_ROOT/target/debug/jpki-virtual-card}}"
[ "${JPKI_PCSC_TEST:-}" = 1 ] || { echo "pdf.sh: run me inside tests/harness/with-card.sh" >&2; exit 2; }
[ -r "$JPKI_MODULE" ] || { echo "pdf.sh: module $JPKI_MODULE not found" >&2; exit 2; }
command -v pyhanko >/dev/null || { echo "pdf.sh: pyhanko missing (pip install -r tests/deps/pip-requirements.txt)" >&2; exit 2; }
module=$(realpath "$JPKI_MODULE")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jpki-pdf.XXXXXX")
trap 'rc=$?; rm -rf "$tmp"; exit $rc' EXIT INT TERM
cd "$tmp"

ctl() { "$JPKI_VC" ctl --control "$JPKI_TEST_CONTROL" "$@"; }
stat_field() { ctl stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
tries() { ctl status | sed -n "s/.*$1_tries_left=\([0-9]*\).*/\1/p"; }
# COMPUTE DIGITAL SIGNATURE P1=00 with P2 = 80 (current EF) or 80|SFI (97, 9A: the key named).
sign_lcs() { awk 'tolower($2) ~ /^802a00(80|97|9a)/ { print substr($2, 9, 2) }' "$JPKI_TEST_APDU_LOG" | tr '\n' ' '; }

# A one-page PDF, written by hand (shared with pdfsig.sh and libreoffice.sh).
python3 "$JPKI_ROOT/tests/integration/lib/make_pdf.py" in.pdf

# The signature CA through the module (public object, no login): CKA_ID 04 on the sign token.
verify_before=$(stat_field verify_count)
pkcs11-tool --module "$module" --slot 1 --read-object --type cert --id 04 -o sign-ca.der >/dev/null 2>&1
openssl x509 -inform DER -in sign-ca.der -out sign-ca.pem
check "the signature CA certificate is read through the module without login" \
    bash -c "openssl x509 -in sign-ca.pem -noout -subject | grep -q 'OU = JPKI for digital signature' && test $(stat_field verify_count) -eq $verify_before"
# The token label carries the card's serial tag: look it up as a user would.
token=$(pkcs11-tool --module "$module" -L 2>/dev/null | sed -n 's/^ *token label *: \(JPKI Sign.*[^ ]\) *$/\1/p' | head -1)
check "signature token found: '$token'" test -n "$token"

sign_pdf() { # sign_pdf IN OUT FIELD [extra pkcs11 options]
    local in=$1 out=$2 field=$3; shift 3
    echo ABC123 | setsid -w pyhanko sign addsig --field "$field" \
        pkcs11 --lib "$module" --token-label "$token" --cert-label "JPKI Digital Signature" "$@" \
        "$in" "$out"
}
validate() { pyhanko sign validate --pretty-print --trust sign-ca.pem --trust-replace --no-revocation-check "$1"; }

# --- 1. default mechanism: CKM_SHA256_RSA_PKCS (hash in the module, card signs) ----------------
sigs_before=$(stat_field signatures); lcs_before=$(sign_lcs)
if sign_pdf in.pdf signed.pdf Sig1 > sign1.out 2>&1; then
    ok "pyhanko sign addsig pkcs11 signs with the signature key"
else
    not_ok "pyhanko sign addsig pkcs11 signs ($(tail -3 sign1.out | tr '\n' ' '))"
fi
check "pyhanko: the card made one signature over a 51-byte DigestInfo" \
    bash -c "test $(stat_field signatures) -eq $((sigs_before + 1)) && test '$(s=$(sign_lcs); echo "${s#"$lcs_before"}")' = '33 '"
validate signed.pdf > validate1.out 2>&1 || true
check "pyhanko sign validate: VALID" grep -q "The signature is judged VALID" validate1.out
check "pyhanko sign validate: signer certificate trusted via the token's CA" \
    grep -q "The signer's certificate is trusted" validate1.out
check "pyhanko sign validate: signed by the card holder's certificate (Kiyose-shi)" \
    grep -q 'Certificate subject: ".*Locality: Kiyose-shi' validate1.out
check "pyhanko sign validate: sha256_rsa, covers the entire file" \
    bash -c "grep -q \"mechanism used was 'sha256_rsa'\" validate1.out && grep -q 'covers the entire file' validate1.out"

# --- 2. --raw-mechanism: pyHanko hashes and builds the DigestInfo, CKM_RSA_PKCS -----------------
sigs_before=$(stat_field signatures); lcs_before=$(sign_lcs)
if sign_pdf signed.pdf signed2.pdf Sig2 --raw-mechanism > sign2.out 2>&1; then
    ok "pyhanko --raw-mechanism adds a second signature (CKM_RSA_PKCS)"
else
    not_ok "pyhanko --raw-mechanism adds a second signature ($(tail -3 sign2.out | tr '\n' ' '))"
fi
check "pyhanko --raw-mechanism: the card signed a 51-byte DigestInfo" \
    bash -c "test $(stat_field signatures) -eq $((sigs_before + 1)) && test '$(s=$(sign_lcs); echo "${s#"$lcs_before"}")' = '33 '"
validate signed2.pdf > validate2.out 2>&1 || true
check "pyhanko sign validate: both signatures VALID" \
    test "$(grep -c 'The signature is judged VALID' validate2.out)" -eq 2

# --- 3. independent check: OpenSSL verifies the first signature over the signed byte ranges -----
python3 - signed.pdf sig1.der content.bin <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
start, len1, start2, len2 = map(int, re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data).groups())
hex_contents = data[start + len1:start2].strip(b"<>")
open(sys.argv[2], "wb").write(bytes.fromhex(hex_contents.decode()))
open(sys.argv[3], "wb").write(data[start:start + len1] + data[start2:start2 + len2])
PY
check "openssl cms -verify: the first signature verifies over the PDF's byte ranges" \
    bash -c "openssl cms -verify -binary -inform DER -in sig1.der -content content.bin \
        -CAfile sign-ca.pem -purpose any -out /dev/null 2>/dev/null"

check "whole suite: no failed or malformed VERIFY" \
    bash -c "test $(stat_field failed_verify_count) -eq 0 && test $(stat_field malformed_verify_count) -eq 0"
check "whole suite: the signature password keeps its 5 tries" test "$(tries sign)" -eq 5

check_done
