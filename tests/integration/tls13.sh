#!/usr/bin/env bash
# TLS 1.3 client authentication with the card's own RSA-PSS (COMPUTE DIGITAL SIGNATURE P1=04),
# through real clients, against `openssl s_server -Verify 2 -tls1_3 -www` on 127.0.0.1:
#   - NSS tstclnt (-V tls1.3:tls1.3), module registered in a fresh NSS database;
#   - openssl s_client -tls1_3 with the libp11 engine (pkcs11: URI).
# extended profile (the card does PSS): both handshakes succeed, the server sees our certificate,
#   and the card made RSASSA-PSS signatures (P1=04), never PKCS#1 v1.5 ones.
# conservative profile (no PSS on the card): the module never advertises PSS; each client fails
#   cleanly as README says — NSS sends no certificate (server: certificate_required), s_client
#   aborts after C_SignInit(CKM_RSA_PKCS_PSS) → CKR_MECHANISM_INVALID — and the card signs
#   nothing. TLS 1.2 with PKCS#1 v1.5 still works there (control).
# Run inside tests/harness/with-card.sh (needs JPKI_TEST_*); prints `ok - …` per check.
set -uo pipefail

root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}}
profile=${JPKI_TEST_PROFILE:-conservative}
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

stat_field() { # stat_field NAME: a top-level number of the card's stats JSON
    "$vc" ctl --control "$JPKI_TEST_CONTROL" stats | sed -e 's/^ok //' |
        python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"
}
# PSS signatures are `80 2A 04 80 20 <hash>` (Lc 0x20); the module's PSS probe is
# `80 2A 04 80 21 …` (33 bytes, cannot be signed) and runs once per process.
# COMPUTE DIGITAL SIGNATURE with P2 = 80 (current EF) or 80|SFI (97, 9A: the key named, on cards
# with the SFI forms): PSS over a 32-byte hash, and PKCS#1 v1.5.
pss_signatures() { awk 'tolower($2) ~ /^802a04(80|97|9a)20/' "$JPKI_TEST_APDU_LOG" | wc -l; }
pkcs1_signatures() { awk 'tolower($2) ~ /^802a00(80|97|9a)/' "$JPKI_TEST_APDU_LOG" | wc -l; }

# --- material: card certificates, a server CA and server certificate --------------------------
"$vc" export --state "$JPKI_TEST_STATE" --out "$tmp/card" >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/srvca.key" -out "$tmp/srvca.pem" \
    -subj "/CN=jpki test server CA" -days 2 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/srv.key" -out "$tmp/srv.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/srv.ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/srvca.pem" -CAkey "$tmp/srvca.key" \
    -CAcreateserial -out "$tmp/srv.pem" -days 2 -extfile "$tmp/srv.ext" 2>/dev/null

token=$(pkcs11-tool --module "$module" -L 2>/dev/null | sed -n 's/^ *token label *: *\(JPKI Auth.*[^ ]\) *$/\1/p' | head -1)
check "auth token found ($token)" test -n "$token"
if [ -z "$token" ]; then check_done; fi
token_uri=${token// /%20}
key_uri="pkcs11:token=$token_uri;object=JPKI%20User%20Authentication;type=private;pin-value=1234"

mechs=$(pkcs11-tool --module "$module" --slot-index 0 -M 2>/dev/null)
port=44330
start_server() { # start_server TLSFLAG
    port=$((port + 1))
    openssl s_server -accept "127.0.0.1:$port" -cert "$tmp/srv.pem" -key "$tmp/srv.key" \
        -CAfile "$tmp/card/auth_ca_cert.pem" -Verify 2 "$1" -www -naccept 1 \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    # That probe connection counted as the one accepted: start again for the client.
    wait "$server_pid" 2>/dev/null
    openssl s_server -accept "127.0.0.1:$port" -cert "$tmp/srv.pem" -key "$tmp/srv.key" \
        -CAfile "$tmp/card/auth_ca_cert.pem" -Verify 2 "$1" -www -naccept 1 \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    sleep 0.3
}
stop_server() {
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
}

# --- NSS database with the module -------------------------------------------------------------
db="$tmp/nssdb"
mkdir -p "$db"
certutil -N -d "sql:$db" --empty-password
modutil -dbdir "sql:$db" -add jpki -libfile "$module" -force >/dev/null 2>&1
nick="$token:JPKI User Authentication"
request=$'GET / HTTP/1.0\r\n\r\n'

printf '%s' "$request" >"$tmp/request"
run_tstclnt() { # run_tstclnt VERSIONS  (-A: request from a file; with stdin tstclnt never exits)
    timeout 60 tstclnt -h 127.0.0.1 -p "$port" -d "sql:$db" -n "$nick" \
        -w 1234 -V "$1" -o -A "$tmp/request" </dev/null >"$tmp/nss.out" 2>&1
}
run_s_client() { # run_s_client TLSFLAG [extra...]
    local flag=$1; shift
    printf '%s' "$request" | PKCS11_MODULE_PATH="$module" timeout 60 openssl s_client \
        -connect "127.0.0.1:$port" "$flag" -engine pkcs11 -keyform engine -key "$key_uri" \
        -cert "$tmp/card/auth_cert.pem" -ign_eof "$@" >"$tmp/ossl.out" 2>&1
}

subject=$(openssl x509 -in "$tmp/card/auth_cert.pem" -noout -subject | sed 's/^subject= *//')
cn=${subject##*CN = }
pss_before=$(pss_signatures)
sigs_before=$(stat_field signatures)

if [ "$profile" = extended ]; then
    check "PSS advertised (CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS)" \
        grep -q "RSA-PKCS-PSS" <<<"$mechs"
    check "SHA256-RSA-PKCS-PSS advertised" grep -q "SHA256-RSA-PKCS-PSS" <<<"$mechs"

    start_server -tls1_3
    run_tstclnt tls1.3:tls1.3
    rc=$?
    stop_server
    check "NSS tstclnt: TLS 1.3 handshake with client certificate (rc=$rc)" \
        grep -q "Protocol  : TLSv1.3" "$tmp/nss.out"
    check "NSS tstclnt: server saw our certificate ($cn)" \
        grep -q "Client certificate" "$tmp/nss.out"
    check "NSS tstclnt: subject CN in the server's answer" grep -q "$cn" "$tmp/nss.out"
    pss_after_nss=$(pss_signatures)
    check "NSS: the card signed with PSS (P1=04)" test "$pss_after_nss" -gt "$pss_before"

    start_server -tls1_3
    run_s_client -tls1_3
    rc=$?
    stop_server
    check "openssl s_client (libp11): TLS 1.3 handshake (rc=$rc)" \
        grep -q "Protocol  : TLSv1.3" "$tmp/ossl.out"
    check "openssl s_client (libp11): server saw our certificate" \
        grep -q "Client certificate" "$tmp/ossl.out"
    check "openssl: the card signed with PSS again" \
        test "$(pss_signatures)" -gt "$pss_after_nss"
    check "no PKCS#1 v1.5 signature was needed for TLS 1.3" \
        test "$(pkcs1_signatures)" -eq 0
else
    check "PSS not advertised on a card without it" \
        bash -c '! grep -q "PSS" <<<"$1"' _ "$mechs"

    start_server -tls1_3
    run_tstclnt tls1.3:tls1.3
    rc=$?
    stop_server
    check "NSS tstclnt TLS 1.3: handshake fails (rc=$rc)" test "$rc" -ne 0
    check "NSS tstclnt TLS 1.3: no certificate sent, server asks for one" \
        grep -Eqi "certificate.required|SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT|Failed to load a suitable client certificate" "$tmp/nss.out"
    check "NSS: server saw no client certificate" \
        bash -c '! grep -q "Client certificate" "$1"' _ "$tmp/nss.out"
    echo "# NSS said: $(grep -m2 -Ei 'error|fail' "$tmp/nss.out" | tr '\n' ' ')"

    start_server -tls1_3
    run_s_client -tls1_3
    rc=$?
    stop_server
    check "openssl s_client TLS 1.3: handshake aborts (rc=$rc)" \
        bash -c '! grep -q "Client certificate" "$1"' _ "$tmp/ossl.out"
    echo "# openssl said: $(grep -m3 -Ei 'error|fail' "$tmp/ossl.out" | tr '\n' ' ')"
    check "the card signed nothing for TLS 1.3 (no P1=04, no signature)" \
        test "$(stat_field signatures)" -eq "$sigs_before" -a "$(pss_signatures)" -eq "$pss_before"

    # Control: TLS 1.2 with PKCS#1 v1.5 works on the same card.
    start_server -tls1_2
    run_tstclnt tls1.2:tls1.2
    rc=$?
    stop_server
    check "control: NSS tstclnt TLS 1.2 with PKCS#1 v1.5 works (rc=$rc)" \
        grep -q "Client certificate" "$tmp/nss.out"
    start_server -tls1_2
    run_s_client -tls1_2 -client_sigalgs RSA+SHA256
    rc=$?
    stop_server
    check "control: openssl s_client TLS 1.2 -client_sigalgs RSA+SHA256 works (rc=$rc)" \
        grep -q "Client certificate" "$tmp/ossl.out"
fi

malformed=$(stat_field malformed_verify_count)
check "no malformed PIN reached the card" test "$malformed" -eq 0

if [ "$check_failed" -ne 0 ]; then
    echo "--- NSS output"; tail -20 "$tmp/nss.out" 2>/dev/null
    echo "--- openssl output"; tail -20 "$tmp/ossl.out" 2>/dev/null
    echo "--- server log"; tail -20 "$tmp/server.log" 2>/dev/null
fi
check_done
