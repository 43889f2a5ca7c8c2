#!/usr/bin/env bash
# NSS tools against the module: modutil registers it in a temporary NSS database, certutil lists
# certificates and keys, the signature key signs through NSS and cmsutil verifies. Runs inside
# tests/harness/with-card.sh.
#
# What this suite pins down:
# - One password for every token: `certutil -K -h all -f PWFILE` logs in to every token that
#   needs it with the same password. The module refuses, without a VERIFY, a password whose
#   format cannot be right for a token (4 digits vs. 6-16 characters), so the other PIN's retry
#   counter is never touched.
# - NSS logs in to a token just to look for certificates only when the token does not declare
#   CKP_PUBLIC_CERTIFICATES_TOKEN ("friendly" tokens are trusted to show every certificate
#   without login). Both tokens declare it (browsers then ask for no password but the auth
#   PIN), so NSS tools that look up the signature certificate by nickname (cmsutil -S, p7sign,
#   signtool, and certutil -L for listing) never see that private certificate: they cannot sign
#   with the signature key. Applications that log in to the token first can: LibreOffice calls
#   PK11_Authenticate on every token before it lists keys; lib/nss_sign.py logs in the same way,
#   then signs. With JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login (the documented workaround for NSS
#   tools) the signature token does not declare the profile and the suite expects cmsutil
#   to sign and verify instead.
# - JPKI end-entity certificates carry a *critical* certificatePolicies extension (J-LIS
#   profile; the virtual card does the same). NSS's legacy certificate verifier does not know
#   that extension and rejects the certificate (SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION); NSS's
#   libpkix verifier (NSS_ENABLE_PKIX_VERIFY=1) accepts it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/clients.bash"

db=sql:$w/db
mkdir "$w/db"
certutil -N -d "$db" --empty-password
check "modutil registers the module in a new NSS database" \
    into "$w/modutil-add" modutil -dbdir "$db" -add jpki -libfile "$module" -force
# (`modutil -list jpki` exits 32 because the empty second reader has no token to describe.)
modutil -dbdir "$db" -list >"$w/modutil-list" 2>&1
check "modutil -list shows the authentication token" has "$w/modutil-list" "token: $auth_token\$"
check "modutil -list shows the signature token" has "$w/modutil-list" "token: $sign_token\$"

# certutil -L: nicknames are "<token label>:<certificate label>".
list() { # list OUT [certutil options]
    local out=$1; shift
    timed certutil -L -d "$db" -h all "$@" </dev/null >"$out" 2>&1 || true
}
list "$w/list-nopw"
check "certutil -L -h all lists the authentication certificate" \
    has "$w/list-nopw" "^$auth_token:$auth_label {2,}u,u,u"
check "certutil -L -h all lists the authentication CA certificate" \
    has "$w/list-nopw" "^$auth_token:$auth_label CA {2,}"
check "certutil -L -h all lists the signature CA certificate" \
    has "$w/list-nopw" "^$sign_token:$sign_label CA {2,}"
check "certutil -L -h all does not list the signature certificate before login" \
    lacks "$w/list-nopw" "^$sign_token:$sign_label {2,}"
check "listing sent no VERIFY" [ "$(card_stat verify_count)" = 0 ]
# NSS forbids the module to create threads: the card is reached through the card-link helper
# (docs/conformance.md, "No threads"), which the module finds beside itself or where the
# package puts it. Every suite that goes through NSS takes this path.
JPKI_PKCS11_LOG=debug certutil -L -d "$db" -h all </dev/null >"$w/list-link" 2>&1 || true
check "NSS reaches the card through the card-link helper (no threads allowed)" \
    has "$w/list-link" "held by the card-link helper"

# One password for every token (JPKI_PKCS11_LOG=debug shows the module's local refusal: C_Login
# answers CKR_PIN_INCORRECT, docs/conformance.md; the VERIFY counts prove it never reached the card).
printf 'ABC123\n' >"$w/pin-sign"
printf '1234\n' >"$w/pin-auth"
keys() { # keys OUT PWFILE: certutil -K -h all
    JPKI_PKCS11_LOG=debug timed certutil -K -d "$db" -h all -f "$2" </dev/null >"$1" 2>&1 || true
}
verifies=$(card_stat verify_count)
keys "$w/keys-sign-pw" "$w/pin-sign"
check "certutil -K -h all -f (signature password): lists the signature key" \
    has "$w/keys-sign-pw" "rsa +02 +$sign_label\$"
check "... the authentication token refused that password locally" \
    has_all "$w/keys-sign-pw" 'jpki-pkcs11 \[DEBUG\] returning PIN incorrect' \
    "could not authenticate to token $auth_token"
check "... one VERIFY reached the card (the signature token's)" \
    [ "$(card_stat verify_count)" = $((verifies + 1)) ]
keys "$w/keys-auth-pin" "$w/pin-auth"
check "certutil -K -h all -f (auth PIN): lists the authentication key" \
    has "$w/keys-auth-pin" "rsa +01 +$auth_label\$"
check "... the signature token refused that PIN locally" \
    has_all "$w/keys-auth-pin" 'jpki-pkcs11 \[DEBUG\] returning PIN incorrect' \
    "could not authenticate to token $sign_token"
check "... one VERIFY reached the card (the authentication token's)" \
    [ "$(card_stat verify_count)" = $((verifies + 2)) ]
check "no password meant for the other token reached the card (no malformed VERIFY)" \
    [ "$(card_stat malformed_verify_count)" = 0 ]
check "no VERIFY failed (no retry was spent)" [ "$(card_stat failed_verify_count)" = 0 ]

# The signature CA (public, read through NSS), trusted for e-mail: the anchor for verifying.
# (-h and -f: were the token not "friendly", NSS would log in before looking up a nickname on
# it, and certutil ignores -f for a lookup by nickname alone.)
certutil -L -d "$db" -h "$sign_token" -n "$sign_token:$sign_label CA" -a -f "$w/pin-sign" \
    </dev/null >"$w/sign-ca.pem" 2>"$w/sign-ca.err" \
    || { show "$w/sign-ca.err"; fail "certutil -L -n ... -a (signature CA)"; }
check "the signature CA, exported through NSS, is trusted for e-mail in the NSS database" \
    into "$w/import-ca" certutil -A -d "$db" -n "JPKI signature CA (trusted)" -t ",C," -a \
    -i "$w/sign-ca.pem"
export_cert "$sign_token" 02 "$w/sign.pem" ABC123
openssl x509 -in "$w/sign.pem" -pubkey -noout >"$w/sign.pub"

printf 'A message signed with the My Number Card signature key.\n' >"$w/msg"
# cmsutil: -Y NONE, else it looks for an encryption certificate of the same nickname (for the
# SMIMEEncryptionKeyPreference attribute), which a signature-only key does not have.
cms_sign() {
    into "$w/cms-sign" timed cmsutil -S -d "$db" -N "$sign_token:$sign_label" -Y NONE \
        -p ABC123 -G -i "$w/msg" -o "$w/msg.p7"
}
cms_flow() {
if p11 --token-label "$sign_token" -O 2>/dev/null | grep -q CKP_PUBLIC_CERTIFICATES_TOKEN; then
    echo "# the signature token declares CKP_PUBLIC_CERTIFICATES_TOKEN: NSS does not log in to look for its certificate"
    verifies=$(card_stat verify_count)
    list "$w/list-sign-pw" -f "$w/pin-sign"
    check "certutil -L -h all -f (signature password) still does not list the signature certificate" \
        lacks "$w/list-sign-pw" "^$sign_token:$sign_label {2,}"
    n=$(card_stat signatures)
    check_fails "cmsutil -S cannot find the signature certificate (NSS does not log in)" cms_sign
    check "... 'the corresponding cert ... does not exist'" \
        has "$w/cms-sign" "the corresponding cert for key \"$sign_token:$sign_label\" does not exist"
    check "... no VERIFY, no signature on the card" \
        [ "$(card_stat verify_count)/$(card_stat signatures)" = "$verifies/$n" ]
else
    echo "# the signature token does not declare CKP_PUBLIC_CERTIFICATES_TOKEN: NSS logs in to it"
    list "$w/list-sign-pw" -f "$w/pin-sign"
    check "certutil -L -h all -f (signature password) lists the signature certificate" \
        has "$w/list-sign-pw" "^$sign_token:$sign_label {2,}u,u,u"
    n=$(card_stat signatures)
    check "cmsutil -S signs a message with the signature key" cms_sign
    check "... one signature on the card" [ "$(card_stat signatures)" = $((n + 1)) ]
    check "cmsutil -D verifies the signature and the chain (libpkix verifier)" \
        into "$w/cms-verify" env NSS_ENABLE_PKIX_VERIFY=1 timeout 30 \
        cmsutil -D -d "$db" -i "$w/msg.p7" -o "$w/msg.out"
    check "... the verified content is the message" cmp -s "$w/msg" "$w/msg.out"
    # The legacy verifier's refusal of critical certificatePolicies (NSS's limit, not the
    # module's): if NSS ever accepts it, this check says so.
    check_fails "cmsutil -D with NSS's legacy verifier refuses the chain" \
        into "$w/cms-legacy" timed cmsutil -D -d "$db" -i "$w/msg.p7" -o "$w/msg.legacy"
    check "... because of the critical certificatePolicies extension" \
        has "$w/cms-legacy" SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION
    sed 's/My Number Card/My Number Cord/' "$w/msg.p7" >"$w/msg-bad.p7"
    if cmp -s "$w/msg.p7" "$w/msg-bad.p7"; then fail "could not alter the signed message"; fi
    check_fails "cmsutil -D rejects an altered message" \
        into "$w/cms-bad" env NSS_ENABLE_PKIX_VERIFY=1 timeout 30 \
        cmsutil -D -d "$db" -i "$w/msg-bad.p7" -o "$w/msg-bad.out"
    check "... as a digest mismatch" has "$w/cms-bad" 'status = DigestMismatch'
fi
}
# By default the signature token declares CKP_PUBLIC_CERTIFICATES_TOKEN (browsers then never ask
# for the signature password at TLS login): cmsutil cannot find the signature certificate.
cms_flow
# The documented workaround for NSS tools: JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login in the tool's
# environment makes the signature token undeclared, so NSS logs in and cmsutil signs.
echo "# with JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login"
export JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login
cms_flow
p11 --token-label "$sign_token" -O >"$w/sign-objects-after-login" 2>&1 || true
check "... with after-login the signature token no longer declares public certificates" \
    lacks "$w/sign-objects-after-login" CKP_PUBLIC_CERTIFICATES_TOKEN
unset JPKI_PKCS11_SIGN_CERT_LOOKUP

# Signing through NSS after logging in first, as LibreOffice does: works either way.
n=$(card_stat signatures)
check "NSS signs with the signature key after PK11_Authenticate (LibreOffice's order)" \
    into "$w/nss-sign" timed python3 "$(dirname "${BASH_SOURCE[0]}")/lib/nss_sign.py" "$w/db" \
    "$sign_token" "$sign_token:$sign_label" "$w/pin-sign" "$w/msg" "$w/msg.sig"
check "... one signature on the card" [ "$(card_stat signatures)" = $((n + 1)) ]
check "... openssl verifies it with the signature certificate" \
    into "$w/nss-sign.verify" openssl dgst -sha256 -verify "$w/sign.pub" -signature "$w/msg.sig" "$w/msg"
check "... and the signature certificate chains to the signature CA (critical policies accepted)" \
    into "$w/chain" openssl verify -CAfile "$w/sign-ca.pem" "$w/sign.pem"
check_fails "with the auth PIN instead, NSS cannot log in to the signature token" \
    into "$w/nss-sign-wrong" timed python3 "$(dirname "${BASH_SOURCE[0]}")/lib/nss_sign.py" \
    "$w/db" "$sign_token" "$sign_token:$sign_label" "$w/pin-auth" "$w/msg" "$w/msg.sig2"

check "no malformed PIN reached the card" [ "$(card_stat malformed_verify_count)" = 0 ]
check "no VERIFY failed" [ "$(card_stat failed_verify_count)" = 0 ]
check_done
