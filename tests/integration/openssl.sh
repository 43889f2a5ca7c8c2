#!/usr/bin/env bash
# OpenSSL 3 signing through the libp11 engine (Debian libengine-pkcs11-openssl) with RFC 7512
# `pkcs11:` URIs, for both card keys; every signature is verified with `openssl dgst -verify`
# against the certificate read through the module. Runs inside tests/harness/with-card.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/clients.bash"

export PKCS11_MODULE_PATH=$module # the engine's module (without it libp11 loads p11-kit-proxy)
export_cert "$auth_token" 01 "$w/auth.pem"
export_cert "$sign_token" 02 "$w/sign.pem" ABC123
openssl x509 -in "$w/auth.pem" -pubkey -noout >"$w/auth.pub"
openssl x509 -in "$w/sign.pem" -pubkey -noout >"$w/sign.pub"
ok "both certificates read through the module (the signature certificate after login)"

auth_key="$auth_uri;object=$(uri_enc "$auth_label");type=private"
sign_key="$sign_uri;object=$(uri_enc "$sign_label");type=private"
printf 'A document signed through the OpenSSL engine.\n' >"$w/msg"
openssl dgst -sha256 -binary "$w/msg" >"$w/msg.sha256"
sigs() { card_stat signatures; }

# dgst_sign NAME KEY-URI PIN HASH: openssl dgst -HASH -sign through the engine.
dgst_sign() {
    into "$w/$1.log" timed openssl dgst "-$4" -engine pkcs11 -keyform engine \
        -sign "$2;pin-value=$3" -out "$w/$1.sig" "$w/msg"
}
verify() { # verify NAME PUB HASH
    into "$w/$1.verify" openssl dgst "-$3" -verify "$2" -signature "$w/$1.sig" "$w/msg"
}

n=$(sigs)
check "openssl dgst -sha256 -sign with the authentication key ($auth_key)" \
    dgst_sign auth-sha256 "$auth_key" 1234 sha256
check "... openssl dgst -verify accepts it with the authentication certificate" \
    verify auth-sha256 "$w/auth.pub" sha256
check "openssl dgst -sha256 -sign with the signature key ($sign_key)" \
    dgst_sign sign-sha256 "$sign_key" ABC123 sha256
check "... openssl dgst -verify accepts it with the signature certificate" \
    verify sign-sha256 "$w/sign.pub" sha256
check "openssl dgst -sha512 -sign with the signature key" \
    dgst_sign sign-sha512 "$sign_key" ABC123 sha512
check "... verifies (SHA-512 DigestInfo)" verify sign-sha512 "$w/sign.pub" sha512
check_fails "a signature does not verify with the other key's certificate" \
    verify auth-sha256 "$w/sign.pub" sha256
check "three signatures on the card" [ "$(sigs)" = $((n + 3)) ]

# pkeyutl signs a precomputed hash; PKCS#1 v1.5 is deterministic, so the result must equal the
# dgst signature byte for byte.
pkeyutl_sign() { # pkeyutl_sign NAME KEY-URI PIN [pkeyopts]
    local name=$1 key=$2 pin=$3; shift 3
    into "$w/$name.log" timed openssl pkeyutl -engine pkcs11 -keyform engine -sign \
        -inkey "$key;pin-value=$pin" -pkeyopt digest:sha256 "$@" -in "$w/msg.sha256" \
        -out "$w/$name.sig"
}
check "openssl pkeyutl -sign with the authentication key" \
    pkeyutl_sign auth-pkeyutl "$auth_key" 1234
check "... openssl dgst -verify accepts it" verify auth-pkeyutl "$w/auth.pub" sha256
check "... identical to the dgst signature (PKCS#1 v1.5)" \
    cmp -s "$w/auth-pkeyutl.sig" "$w/auth-sha256.sig"
check "openssl pkeyutl -sign with the signature key" \
    pkeyutl_sign sign-pkeyutl "$sign_key" ABC123
check "... openssl dgst -verify accepts it" verify sign-pkeyutl "$w/sign.pub" sha256
check "... identical to the dgst signature (PKCS#1 v1.5)" \
    cmp -s "$w/sign-pkeyutl.sig" "$w/sign-sha256.sig"

# RSA-PSS: only where the module offers CKM_RSA_PKCS_PSS (a card with its own PSS mode).
if module_has_pss; then
    check "openssl pkeyutl -sign with RSA-PSS (the module offers CKM_RSA_PKCS_PSS)" \
        pkeyutl_sign auth-pss "$auth_key" 1234 -pkeyopt rsa_padding_mode:pss \
        -pkeyopt rsa_pss_saltlen:digest
    check "... verifies as RSA-PSS" openssl pkeyutl -verify -pubin -inkey "$w/auth.pub" \
        -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest \
        -in "$w/msg.sha256" -sigfile "$w/auth-pss.sig"
else
    n=$(sigs)
    check_fails "openssl pkeyutl RSA-PSS fails: the module offers no PSS and no raw RSA" \
        pkeyutl_sign auth-pss "$auth_key" 1234 -pkeyopt rsa_padding_mode:pss
    check "... refused as an unsupported mechanism" \
        has "$w/auth-pss.log" 'PKCS#11 module:ERR_CKR_error:Mechanism invalid'
    check "... and no signature reached the card" [ "$(sigs)" = "$n" ]
fi

# PINs: a wrong one fails cleanly and costs exactly one try (libp11 does not retry it); a
# malformed one never reaches the card; the right one afterwards works and resets the counter.
failed=$(card_stat failed_verify_count)
check_fails "a wrong authentication PIN fails" dgst_sign wrong "$auth_key" 9999 sha256
check "... one VERIFY failed on the card (no retries)" \
    [ "$(card_stat failed_verify_count)" = $((failed + 1)) ]
pin_count_low() {
    into "$w/token-info" p11 --token-label "$auth_token" -T || fail "pkcs11-tool -T"
    grep -q 'user PIN count low' "$w/token-info"
}
check "... and the token now reports CKF_USER_PIN_COUNT_LOW" pin_count_low
check_fails "a malformed authentication PIN (5 digits) fails" \
    dgst_sign malformed "$auth_key" 12345 sha256
check "... without reaching the card" [ "$(card_stat malformed_verify_count)" = 0 ]
check "... and without a VERIFY" [ "$(card_stat failed_verify_count)" = $((failed + 1)) ]
check "the right PIN still signs" dgst_sign again "$auth_key" 1234 sha256
check_fails "... and the token no longer reports CKF_USER_PIN_COUNT_LOW" pin_count_low
check_done
