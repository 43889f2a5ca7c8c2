#!/usr/bin/env bash
# TLS client authentication with the card's authentication key, against servers on 127.0.0.1
# that require a client certificate: `openssl s_server -Verify 2 -www` (once TLS 1.2 only, once
# TLS 1.3 only) and NSS `selfserv -r -r`. Clients: NSS tstclnt, openssl s_client with the libp11
# engine, gnutls-cli. Runs inside tests/harness/with-card.sh (private network namespace).
#
# TLS 1.2: every client must log in, sign and fetch the page (CKM_RSA_PKCS over a DigestInfo;
# clients may pick RSA-PSS instead where the module offers it).
# TLS 1.3 forbids PKCS#1 v1.5 in CertificateVerify (RFC 8446 §4.4.3). A card that signs only
# PKCS#1 v1.5 cannot do it; what each client then does is asserted below, so that a change is
# noticed (observed with NSS 3.87, OpenSSL 3.0 + libp11 0.4.12, GnuTLS 3.7.9):
#   tstclnt      finds no usable key, sends no certificate; server alert certificate_required
#   s_client     tries C_SignInit(CKM_RSA_PKCS_PSS), then CKM_RSA_X_509: both refused by the
#                module (CKR_MECHANISM_INVALID); handshake aborts (internal_error alert)
#   gnutls-cli   "Detected incompatible with TLS1.3 RSA key", sends no certificate; server
#                alert certificate_required
# In no case does a signature reach the card. None of them falls back to TLS 1.2 by itself.
# When the module advertises CKM_RSA_PKCS_PSS (a card with its own PSS mode: the extended
# profile of the virtual card), TLS 1.3 must work with every client instead, each signature an
# RSASSA-PSS made by the card (COMPUTE DIGITAL SIGNATURE P1=04), and the suite checks that.
#
# Two client-side quirks shown here:
# - OpenSSL prefers rsa_pss_rsae_* even in TLS 1.2, so without PSS `-client_sigalgs RSA+SHA256`
#   (or similar) is needed; without it the handshake fails (checked).
# - NSS's legacy certificate verifier rejects the JPKI certificate's critical certificatePolicies
#   (SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION); an NSS server needs NSS_ENABLE_PKIX_VERIFY=1 (checked
#   both ways with selfserv).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/clients.bash"

# --- certificates -------------------------------------------------------------------------------
export_cert "$auth_token" 03 "$w/auth-ca.pem"
export_cert "$auth_token" 01 "$w/auth.pem"
ok "authentication certificate and its CA read through the module"
auth_cn=$(openssl x509 -in "$w/auth.pem" -noout -subject -nameopt sep_comma_plus,utf8 \
    | sed -n 's/.*CN=\([^,]*\).*/\1/p')
[ -n "$auth_cn" ] || fail "authentication certificate has a CN"

# A throwaway server CA and server certificate for 127.0.0.1 (P-256: quick to generate; the
# server's key type does not matter for client authentication).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$w/ca.key" \
    -out "$w/ca.pem" -subj /CN=jpki-test-server-ca -days 2 >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$w/srv.key" \
    -out "$w/srv.csr" -subj /CN=127.0.0.1 >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$w/srv.ext"
openssl x509 -req -in "$w/srv.csr" -CA "$w/ca.pem" -CAkey "$w/ca.key" -CAcreateserial \
    -out "$w/srv.pem" -days 1 -extfile "$w/srv.ext" >/dev/null 2>&1
ok "throwaway server certificate for 127.0.0.1"

# --- servers ------------------------------------------------------------------------------------
port12=44312 port13=44313 port_nss=44314 port_nss_legacy=44315
s_server() { # s_server PORT VERSION-OPTION LOG
    bg openssl s_server -accept "127.0.0.1:$1" -cert "$w/srv.pem" -key "$w/srv.key" \
        -CAfile "$w/auth-ca.pem" -Verify 2 -www "$2" >"$3" 2>&1
}
s_server $port12 -tls1_2 "$w/s12.log"
s_server $port13 -tls1_3 "$w/s13.log"

# NSS server: its own database with the server key and the JPKI auth CA trusted for clients.
sdb=sql:$w/sdb
mkdir "$w/sdb"
certutil -N -d "$sdb" --empty-password
openssl pkcs12 -export -in "$w/srv.pem" -inkey "$w/srv.key" -name server -passout pass: \
    -out "$w/srv.p12"
pk12util -i "$w/srv.p12" -d "$sdb" -W '' >/dev/null
certutil -A -d "$sdb" -n "JPKI auth CA" -t "T,," -a -i "$w/auth-ca.pem"
NSS_ENABLE_PKIX_VERIFY=1 bg selfserv -d "$sdb" -e server -p $port_nss -r -r -v \
    -V tls1.2:tls1.3 >"$w/selfserv.log" 2>&1
bg selfserv -d "$sdb" -e server -p $port_nss_legacy -r -r -v -V tls1.2:tls1.2 \
    >"$w/selfserv-legacy.log" 2>&1

wait_for "$w/s12.log" '^ACCEPT'
wait_for "$w/s13.log" '^ACCEPT'
wait_for "$w/selfserv.log" 'About to call accept'
wait_for "$w/selfserv-legacy.log" 'About to call accept'
ok "servers listening on 127.0.0.1 (s_server TLS 1.2, s_server TLS 1.3, selfserv)"

# --- clients ------------------------------------------------------------------------------------
db=sql:$w/db
mkdir "$w/db"
certutil -N -d "$db" --empty-password
modutil -dbdir "$db" -add jpki -libfile "$module" -force >/dev/null 2>&1
certutil -A -d "$db" -n "test server CA" -t "C,," -a -i "$w/ca.pem"
nick="$auth_token:$auth_label"
printf 'GET / HTTP/1.0\r\n\r\n' >"$w/get"
tstclnt_to() { # tstclnt_to PORT VERSIONS OUT: -A sends the request from a file (with a pipe on
    # stdin tstclnt spins on the closed pipe after the reply).
    into "$3" timed tstclnt -h 127.0.0.1 -p "$1" -d "$db" -n "$nick" -w 1234 -V "$2" -o \
        -A "$w/get" </dev/null
}
key_uri="$auth_uri;object=$(uri_enc "$auth_label");type=private;pin-value=1234"
export PKCS11_MODULE_PATH=$module # the libp11 engine's module (else it loads p11-kit-proxy)
s_client_to() { # s_client_to PORT OUT [options]
    local port=$1 out=$2; shift 2
    into "$out" timed openssl s_client -connect "127.0.0.1:$port" -engine pkcs11 \
        -keyform engine -key "$key_uri" -cert "$w/auth.pem" -CAfile "$w/ca.pem" \
        -verify_return_error -ign_eof "$@" <"$w/get"
}
gnutls_to() { # gnutls_to PORT OUT [options]
    local port=$1 out=$2; shift 2
    into "$out" timed gnutls-cli --provider "$module" --x509cafile "$w/ca.pem" \
        --x509certfile "$w/auth.pem" --x509keyfile "$key_uri" -p "$port" "$@" 127.0.0.1 \
        <"$w/get"
}
# page_shows OUT VERSION: the s_server -www page reports the protocol and our certificate.
page_shows() {
    has_all "$1" "Protocol  : TLSv$2" '^Client certificate' "Subject: C ?= ?JP, CN ?= ?$auth_cn"
}
sigs() { card_stat signatures; }

echo "# TLS 1.2"
n=$(sigs)
tstclnt_to $port12 tls1.2:tls1.2 "$w/tstclnt12" || fail "tstclnt TLS 1.2"
check "tstclnt (NSS) TLS 1.2: logs in, signs, page shows our client certificate" \
    page_shows "$w/tstclnt12" 1.2
check "... one signature on the card" [ "$(sigs)" = $((n + 1)) ]

n=$(sigs)
s_client_to $port12 "$w/s_client12" -tls1_2 -client_sigalgs RSA+SHA256 \
    || fail "openssl s_client TLS 1.2"
check "openssl s_client + libp11 engine TLS 1.2 (-client_sigalgs RSA+SHA256): page shows our certificate" \
    page_shows "$w/s_client12" 1.2
check "... one signature on the card" [ "$(sigs)" = $((n + 1)) ]

n=$(sigs)
gnutls_to $port12 "$w/gnutls12" --priority NORMAL:-VERS-TLS1.3 || fail "gnutls-cli TLS 1.2"
check "gnutls-cli TLS 1.2 (NORMAL:-VERS-TLS1.3): page shows our certificate" \
    page_shows "$w/gnutls12" 1.2
check "... one signature on the card" [ "$(sigs)" = $((n + 1)) ]

n=$(sigs)
tstclnt_to $port_nss tls1.2:tls1.2 "$w/tstclnt-selfserv12" \
    || { show "$w/selfserv.log"; fail "tstclnt to selfserv TLS 1.2"; }
check "tstclnt to NSS selfserv -r -r, TLS 1.2: page served" has "$w/tstclnt-selfserv12" '^HTTP/1.0 200 OK'
check "... selfserv validated our client certificate" \
    wait_for "$w/selfserv.log" "subject DN: CN=$auth_cn,C=JP"
check "... one signature on the card" [ "$(sigs)" = $((n + 1)) ]

check_fails "selfserv with NSS's legacy verifier refuses the JPKI certificate" \
    tstclnt_to $port_nss_legacy tls1.2:tls1.2 "$w/tstclnt-legacy"
check "... for its critical certificatePolicies extension (SEC_ERROR_UNKNOWN_CRITICAL_EXTENSION)" \
    wait_for "$w/selfserv-legacy.log" 'unknown critical extension'

echo "# TLS 1.3 and OpenSSL's preference for RSA-PSS"
if module_has_pss; then
    echo "# the module advertises CKM_RSA_PKCS_PSS: TLS 1.3 must work"
    # RSASSA-PSS on the card: COMPUTE DIGITAL SIGNATURE P1=04 with a 32-byte hash (the module's
    # one-off PSS probe has Lc 0x21 and is not counted).
    # P2 = 80 (current EF) or 80|SFI (97, 9A) on cards with the SFI forms.
    pss_count() { awk 'tolower($2) ~ /^802a04(80|97|9a)20/' "$JPKI_TEST_APDU_LOG" | wc -l; }
    n=$(sigs) pss=$(pss_count)
    tstclnt_to $port13 tls1.3:tls1.3 "$w/tstclnt13" || fail "tstclnt TLS 1.3"
    check "tstclnt TLS 1.3 (RSA-PSS): page shows our certificate" page_shows "$w/tstclnt13" 1.3
    s_client_to $port13 "$w/s_client13" -tls1_3 || fail "s_client TLS 1.3"
    check "openssl s_client TLS 1.3 (RSA-PSS): page shows our certificate" \
        page_shows "$w/s_client13" 1.3
    gnutls_to $port13 "$w/gnutls13" || fail "gnutls-cli TLS 1.3"
    check "gnutls-cli TLS 1.3 (RSA-PSS): page shows our certificate" page_shows "$w/gnutls13" 1.3
    s_client_to $port12 "$w/s_client12-pss" -tls1_2 || fail "s_client TLS 1.2 with PSS"
    check "openssl s_client TLS 1.2 without -client_sigalgs (RSA-PSS): page shows our certificate" \
        page_shows "$w/s_client12-pss" 1.2
    tstclnt_to $port_nss tls1.2:tls1.3 "$w/tstclnt-selfserv13" || fail "tstclnt to selfserv TLS 1.3"
    check "tstclnt to NSS selfserv, TLS 1.2-1.3: TLS 1.3 is negotiated and the page served" \
        has "$w/tstclnt-selfserv13" '^HTTP/1.0 200 OK'
    check "... selfserv validated our client certificate over TLS 1.3" \
        wait_for "$w/selfserv.log" 'SSL version 3\.4 '
    check "... five signatures on the card" [ "$(sigs)" = $((n + 5)) ]
    check "... all RSASSA-PSS made by the card (P1=04)" [ "$(pss_count)" = $((pss + 5)) ]
else
    echo "# the module offers no CKM_RSA_PKCS_PSS (card signs PKCS#1 v1.5 only)"
    n=$(sigs)
    check_fails "tstclnt TLS 1.3: fails" tstclnt_to $port13 tls1.3:tls1.3 "$w/tstclnt13"
    check "... NSS found no key usable for TLS 1.3 and sent no certificate" \
        has "$w/tstclnt13" 'Failed to load a suitable client certificate'
    check "... the server answered certificate_required" \
        has "$w/tstclnt13" SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT
    check "... s_server saw no certificate" has "$w/s13.log" 'peer did not return a certificate'

    check_fails "tstclnt TLS 1.2-1.3 to selfserv: fails (NSS does not fall back to TLS 1.2)" \
        tstclnt_to $port_nss tls1.2:tls1.3 "$w/tstclnt-selfserv13"
    check "... certificate_required" has "$w/tstclnt-selfserv13" SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT

    # Through pkcs11-spy (OpenSC), to see the calls libp11 makes.
    spy=$(dpkg -L opensc-pkcs11 | grep '/pkcs11-spy\.so$' | head -n 1)
    PKCS11_MODULE_PATH=$spy PKCS11SPY=$module PKCS11SPY_OUTPUT=$w/spy13.log \
        check_fails "openssl s_client TLS 1.3: fails" s_client_to $port13 "$w/s_client13" -tls1_3
    awk '/^[0-9]+: C_/ { fn = $2 } fn == "C_SignInit" && /pMechanism->type/ { m = $4 }
         fn == "C_SignInit" && /^Returned:/ { print m, $3; fn = "" }' "$w/spy13.log" >"$w/signinits"
    printf 'CKM_RSA_PKCS_PSS CKR_MECHANISM_INVALID\nCKM_RSA_X_509 CKR_MECHANISM_INVALID\n' \
        >"$w/signinits.expected"
    check "... libp11 tried C_SignInit(CKM_RSA_PKCS_PSS), then C_SignInit(CKM_RSA_X_509); both refused" \
        diff "$w/signinits.expected" "$w/signinits"
    check "... and called no C_Sign" lacks "$w/spy13.log" '^[0-9]+: C_Sign$'
    check "... the module refused the RSA-PSS/raw RSA sign mechanisms (CKR_MECHANISM_INVALID)" \
        has "$w/s_client13" 'PKCS#11 module:ERR_CKR_error:Mechanism invalid'
    check "... so OpenSSL could not make its CertificateVerify" \
        has "$w/s_client13" 'tls_construct_cert_verify'
    check "... and aborted the handshake with an internal_error alert" \
        wait_for "$w/s13.log" 'tlsv1 alert internal error'

    check_fails "gnutls-cli TLS 1.3: fails" gnutls_to $port13 "$w/gnutls13" -d 2
    check "... GnuTLS saw the key cannot do TLS 1.3 (no RSA-PSS)" \
        has "$w/gnutls13" 'Detected incompatible with TLS1.3 RSA key'
    check "... sent no certificate" has "$w/gnutls13" 'No certificate was sent to peer'
    check "... and the server answered certificate_required (alert 116)" \
        has "$w/gnutls13" 'Received alert \[116\]: Certificate is required'

    check_fails "openssl s_client TLS 1.2 without -client_sigalgs: fails (OpenSSL picks RSA-PSS)" \
        s_client_to $port12 "$w/s_client12-pss" -tls1_2
    check "... refused by the module as an unsupported mechanism" \
        has "$w/s_client12-pss" 'PKCS#11 module:ERR_CKR_error:Mechanism invalid'

    check "no signature reached the card in any of these attempts" [ "$(sigs)" = "$n" ]
fi

check "no malformed PIN reached the card" [ "$(card_stat malformed_verify_count)" = 0 ]
check "no VERIFY failed" [ "$(card_stat failed_verify_count)" = 0 ]
check_done
