# Shared set-up of the browser suites (firefox.sh, chromium.sh); sourced, not run.
#
# Gives: $scratch (removed on exit), ok/not_ok, start_bg (tracked background processes, stopped
# on exit by their PID), the card's certificates in $scratch/card, a test CA + server certificate
# for 127.0.0.1, and start_s_server VERSION PORT (openssl s_server -Verify 2 -www on loopback).
# Everything runs inside the harness's private network namespace: only loopback exists.

set -uo pipefail

JPKI_ROOT=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
JPKI_MODULE=${JPKI_MODULE:-$JPKI_ROOT/target/release/libjpki_pkcs11.so}
JPKI_VC=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$JPKI_ROOT/target/debug/jpki-virtual-card}}
export JPKI_ROOT JPKI_MODULE JPKI_VC

# The auth PIN of the virtual card, typed by the "user" (the driver) into the browser's own
# prompt. The module itself never sees it from anywhere else.
AUTH_PIN=1234

# The library the browser loads. JPKI_BROWSER_SPY=1 (debugging) puts OpenSC's pkcs11-spy in front
# of the module and logs every call to $scratch/spy.log (PIN bytes included: test PINs only).
BROWSER_MODULE=$JPKI_MODULE

source "$(dirname "${BASH_SOURCE[0]}")/check.bash"
# finish: the summary and exit status (check_done), keeping the logs when a check failed.
finish() {
    if [ "$check_failed" -ne 0 ]; then
        echo "# logs in $scratch" >&2
        JPKI_KEEP_SCRATCH=1
    fi
    check_done
}

[ -n "${JPKI_PCSC_TEST:-}" ] || { echo "run inside tests/harness/with-card.sh" >&2; exit 2; }
[ -r "$JPKI_MODULE" ] || { echo "module $JPKI_MODULE not built (cargo build --release --lib)" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/jpki-browser.XXXXXX")
bg_pids=()
# start_bg LOGFILE COMMAND...: runs COMMAND in the background in its own process group, so that
# cleanup can stop it and every child it made (browsers fork many) by that group's id.
start_bg() {
    local log=$1
    shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    bg_pids+=("$!")
    last_pid=$!
}
stop_bg() {
    local pid
    for pid in "${bg_pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${bg_pids[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    bg_pids=()
}
cleanup() {
    stop_bg
    if [ -n "${JPKI_KEEP_SCRATCH:-}" ]; then
        echo "# scratch kept: $scratch" >&2
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
    local limit=$1 i
    shift
    for i in $(seq 1 $((limit * 10))); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The card's certificates (public: the harness's state file is the card).
mkdir -p "$scratch/card"
"$JPKI_VC" export --state "$JPKI_TEST_STATE" --out "$scratch/card" >/dev/null ||
    { not_ok "export the card certificates"; finish; }
AUTH_SUBJECT_CN=$(openssl x509 -in "$scratch/card/auth_cert.pem" -noout -subject -nameopt multiline |
    sed -n 's/^ *commonName *= *//p' | head -n 1)

if [ -n "${JPKI_BROWSER_SPY:-}" ]; then
    BROWSER_MODULE=/usr/lib/x86_64-linux-gnu/pkcs11-spy.so
    export PKCS11SPY=$JPKI_MODULE PKCS11SPY_OUTPUT=$scratch/spy.log
fi

# Test CA and the server certificate for 127.0.0.1 (the browsers trust the CA through their NSS db).
mkdir -p "$scratch/pki"
(
    cd "$scratch/pki" &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=jpki-pkcs11 browser test CA" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext -out server.pem
) >"$scratch/pki/log" 2>&1 || { cat "$scratch/pki/log" >&2; not_ok "test CA and server certificate"; finish; }

# start_s_server tls1_2|tls1_3 PORT: a server that requires a client certificate (-Verify 2) from
# the card's authentication CA and echoes the session, including the client certificate (-www).
start_s_server() {
    local version=$1 port=$2
    start_bg "$scratch/s_server-$version.log" openssl s_server -accept "127.0.0.1:$port" \
        -cert "$scratch/pki/server.pem" -key "$scratch/pki/server.key" \
        -CAfile "$scratch/card/auth_ca_cert.pem" -Verify 2 -www "-$version"
    wait_for 10 port_open "$port" || { not_ok "s_server $version listens on $port"; finish; }
}

# Does the module advertise CKM_RSA_PKCS_PSS on the authentication token (slot 0)? Only then can
# a browser do TLS 1.3 client authentication (RFC 8446 forbids PKCS#1 v1.5 in CertificateVerify).
module_has_pss() {
    pkcs11-tool --module "$JPKI_MODULE" -M --slot 0 2>/dev/null | grep -q '^ *RSA-PKCS-PSS'
}

# VERIFY commands that reached the card (the card's own counters).
card_stats() { "$JPKI_VC" ctl --control "$JPKI_TEST_CONTROL" stats | sed 's/^ok //'; }
stat_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

