#!/usr/bin/env bash
# OpenSSL 3 with pkcs11-provider (Debian 12: bookworm-backports, tests/deps/backports.txt), the
# module named in openssl.cnf exactly as the README shows:
#   - openssl pkeyutl sign (signature key) and verify;
#   - openssl cms -sign with the signature key, openssl cms -verify;
#   - openssl s_client TLS 1.2 against openssl s_server -Verify 1 (authentication key);
#   - TLS 1.3: works on a card with PSS (card signs RSASSA-PSS, P1=04); on a card without PSS
#     the handshake fails cleanly: the module offers no PSS, nothing is signed, no try is lost.
# Also: the private keys' CKA_ALLOWED_MECHANISMS list PSS exactly when the token does (the
# provider refuses PSS otherwise: "mechanism not allowed with this key").
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
provider=$(dpkg -L pkcs11-provider 2>/dev/null | grep '/ossl-modules/pkcs11.so$' | head -n 1)
[ -n "$provider" ] || { echo "pkcs11-provider missing (tests/deps/install.sh)" >&2; exit 2; }
profile=${JPKI_TEST_PROFILE:-conservative}

# openssl.cnf as in the README (the module path is the only difference).
cat >openssl.cnf <<CNF
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect

[default_sect]
activate = 1

[pkcs11_sect]
module = $provider
pkcs11-module-path = $module
activate = 1
CNF
export OPENSSL_CONF=$tmp/openssl.cnf

sign_key="$sign_uri;object=$(uri_enc "$sign_label");type=private"
auth_key="$auth_uri;object=$(uri_enc "$auth_label");type=private"
"$vc" export --state "$JPKI_TEST_STATE" --out card >/dev/null
sigs() { card_stat signatures; }
pss_signatures() { awk 'tolower($2) ~ /^802a04(80|97|9a)20/' "$JPKI_TEST_APDU_LOG" | wc -l; }

# 0. What the provider sees of the keys.
openssl storeutl -text "$sign_key?pin-value=$sign_pw" >store.txt 2>&1
check "openssl storeutl: the provider finds the signature key" grep -q "PKCS11 RSA Private Key" store.txt
has_pss=""
pkcs11-tool --module "$module" --token-label "$auth_token" -M 2>/dev/null | grep -q "RSA-PKCS-PSS" && has_pss=1
allowed() { # allowed TOKEN PIN: the private key's CKA_ALLOWED_MECHANISMS as pkcs11-tool prints them
    pkcs11-tool --module "$module" --token-label "$1" --login --pin "$2" --list-objects --type privkey 2>/dev/null |
        sed -n 's/^ *Allowed mechanisms: *//p'
}
a=$(allowed "$auth_token" "$auth_pin")
if [ -n "$has_pss" ]; then
    check "PSS card: CKA_ALLOWED_MECHANISMS lists RSA-PKCS-PSS and SHA256-RSA-PKCS-PSS ($a)" \
        bash -c "[[ '$a' == *RSA-PKCS-PSS* && '$a' == *SHA256-RSA-PKCS-PSS* ]]"
else
    check "card without PSS: CKA_ALLOWED_MECHANISMS without PSS ($a)" bash -c "[[ '$a' == *SHA256-RSA-PKCS* && '$a' != *PSS* ]]"
fi

# 1. pkeyutl sign and verify (SHA-256 digest, PKCS#1 v1.5).
printf 'contract text\n' >doc.txt
openssl dgst -sha256 -binary doc.txt >doc.sha256
s0=$(sigs)
if openssl pkeyutl -sign -inkey "$sign_key?pin-value=$sign_pw" -pkeyopt digest:sha256 \
    -in doc.sha256 -out doc.sig >pkeyutl.txt 2>&1; then
    ok "openssl pkeyutl -sign with the signature key"
else
    show pkeyutl.txt; not_ok "openssl pkeyutl -sign with the signature key"
fi
check "the card made one signature" test "$(sigs)" -eq $((s0 + 1))
openssl x509 -in card/sign_cert.pem -pubkey -noout >sign_pub.pem 2>/dev/null ||
    pkcs11-tool --module "$module" --token-label "$sign_token" --login --pin "$sign_pw" \
        --read-object --type pubkey --id 02 -o sign_pub.der >/dev/null 2>&1
check "openssl pkeyutl -verify (software, public key) accepts it" \
    openssl pkeyutl -verify -pubin -inkey sign_pub.pem -pkeyopt digest:sha256 -in doc.sha256 -sigfile doc.sig

# 2. CMS with the signature key.
if openssl cms -sign -binary -in doc.txt -signer card/sign_cert.pem -inkey "$sign_key?pin-value=$sign_pw" \
    -md sha256 -outform DER -out doc.p7s -nodetach >cms.txt 2>&1; then
    ok "openssl cms -sign with the signature key"
else
    show cms.txt; not_ok "openssl cms -sign with the signature key"
fi
check "openssl cms -verify (JPKI signature CA as the trust root)" \
    openssl cms -verify -binary -inform DER -in doc.p7s -CAfile card/sign_ca_cert.pem -purpose any -out doc.out
check "the verified content is the document" cmp -s doc.txt doc.out

# 3./4. TLS client authentication with the authentication key.
openssl req -x509 -newkey rsa:2048 -nodes -keyout srv.key -out srv.pem -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -days 2 2>/dev/null
port=44400
server() { # server TLSFLAG: a one-connection s_server demanding a client certificate
    port=$((port + 1))
    bg openssl s_server -accept "127.0.0.1:$port" -cert srv.pem -key srv.key \
        -CAfile card/auth_ca_cert.pem -Verify 1 "$1" -naccept 1 -www >server.log 2>&1
    local i
    for i in $(seq 50); do ss -ltn 2>/dev/null | grep -q ":$port " && return 0; sleep 0.1; done
}
client() { # client TLSFLAG [more s_client args]: one line through the handshake
    local v=$1; shift
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 30 openssl s_client -ign_eof -connect "127.0.0.1:$port" "$v" \
        -cert card/auth_cert.pem -key "$auth_key?pin-value=$auth_pin" -CAfile srv.pem "$@" >client.log 2>&1
}
server -tls1_2
s0=$(sigs)
if client -tls1_2 $([ -z "$has_pss" ] && echo -client_sigalgs RSA+SHA256); then :; fi
check "TLS 1.2: handshake done, the server's page names our client certificate" \
    bash -c 'grep -q "HTTP/1.0 200 ok" client.log && grep -q "Client certificate" client.log' 
check "TLS 1.2: the card signed the CertificateVerify" test "$(sigs)" -gt "$s0"
wait_server() { local p; for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null; done; bg_pids=(); }
wait_server

server -tls1_3
s0=$(sigs); p0=$(pss_signatures)
client -tls1_3 || true
wait_server
if [ -n "$has_pss" ]; then
    check "TLS 1.3 on the PSS card: handshake done, the server's page names our client certificate" \
    bash -c 'grep -q "HTTP/1.0 200 ok" client.log && grep -q "Client certificate" client.log && grep -q "TLSv1.3" client.log' 
    check "TLS 1.3: the card made one RSASSA-PSS signature (P1=04)" test "$(pss_signatures)" -eq $((p0 + 1))
else
    check "TLS 1.3 without PSS: the handshake fails (no page)" bash -c '! grep -q "HTTP/1.0 200 ok" client.log'
    check "TLS 1.3 without PSS: the card signed nothing" test "$(sigs)" -eq "$s0"
    check "TLS 1.3 without PSS: the provider says CKM_RSA_PKCS_PSS unavailable (README)" \
        grep -q "CKM_RSA_PKCS_PSS unavailable" client.log
fi
[ "$profile" = extended ] && check "extended profile has PSS" test -n "$has_pss"

check_no_pin_harm 3 5
check_done
