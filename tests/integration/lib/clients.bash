# Shared by the client suites (nss.sh, tls.sh, openssl.sh, p11kit.sh); sourced, not run. Lives in
# lib/ so that tests/run-all.sh (which runs tests/integration/*.sh) does not take it for a suite.
#
# Gives: $module (absolute path of the module under test), $w (scratch dir, removed on exit),
# ok/not_ok/check/check_done (lib/check.bash), fail, check_fails, bg (start a background process that is stopped on exit),
# token labels $auth_token/$sign_token and their URI forms, card counters.
set -euo pipefail
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"
root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
module=$(readlink -f "${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}")
[ -f "$module" ] || { echo "not ok - module $module not built (cargo build --release --lib)" >&2; exit 1; }
vc=${JPKI_VC:-$JPKI_TEST_CARD_BIN}
w=$(mktemp -d)
bg_pids=()
cleanup() {
    local rc=$?
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$w"
    exit $rc
}
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/check.bash"
# show FILE...: prints files to stderr (diagnostics before a failure).
show() { local f; for f in "$@"; do echo "--- $f" >&2; tail -n 40 "$f" >&2 || true; done; }
# The output of the last client run through `into`, shown when a check fails.
last_log=""
# fail WHAT: a failed step (not_ok) with the last client's output; the suite goes on.
fail() {
    not_ok "$*"
    if [ -n "$last_log" ]; then show "$last_log"; fi
}
# check_fails WHAT CMD...: CMD must fail cleanly: not killed by a signal (a crash), not timed out.
check_fails() {
    local what=$1 rc=0; shift
    "$@" || rc=$?
    if [ $rc -eq 0 ]; then fail "$what (it succeeded)"
    elif [ $rc -eq 124 ]; then fail "$what (timed out)"
    elif [ $rc -gt 128 ] && [ $rc -le 192 ]; then fail "$what (killed by signal $((rc - 128)))"
    else ok "$what"; fi
}
# into FILE CMD...: runs CMD with its output (both streams) in FILE.
into() { local out=$1; shift; last_log=$out; "$@" >"$out" 2>&1; }
# has FILE REGEX / lacks FILE REGEX: grep -E that shows FILE when it does not hold.
has() { grep -qE -- "$2" "$1" || { echo "expected /$2/ in $1:" >&2; show "$1"; return 1; }; }
has_all() { local f=$1 re; shift; for re; do has "$f" "$re" || return 1; done; }
lacks() { ! grep -qE -- "$2" "$1" || { echo "unexpected /$2/ in $1:" >&2; show "$1"; return 1; }; }
# bg CMD...: starts CMD in the background; it is stopped when the suite ends.
bg() { "$@" & bg_pids+=("$!"); }
# wait_for FILE REGEX: waits (at most 10 s) until FILE matches (a server announcing it is ready).
wait_for() {
    local _
    for _ in $(seq 1 200); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "timed out waiting for /$2/ in $1" >&2; show "$1"; return 1
}
# Every client gets at most this long: a hang is a failure, not a stuck suite.
timed() { timeout 30 "$@"; }

# uri_enc TEXT: RFC 7512 percent-encoding of a path attribute value.
uri_enc() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case "$c" in
            [A-Za-z0-9._~-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf %s "$out"
}

# The token labels as the module shows them (they carry part of the card's serial number).
p11() { pkcs11-tool --module "$module" "$@"; }
# Both tokens, whatever this machine's configuration (README "Which tokens a program sees").
JPKI_PKCS11_TOKENS=all p11 -L >"$w/slots" 2>&1 || { show "$w/slots"; fail "pkcs11-tool -L through the module"; check_done; }
auth_token=$(sed -n 's/^ *token label *: *\(JPKI Auth.*[^ ]\) *$/\1/p' "$w/slots" | head -n 1)
sign_token=$(sed -n 's/^ *token label *: *\(JPKI Sign.*[^ ]\) *$/\1/p' "$w/slots" | head -n 1)
[ -n "$auth_token" ] && [ -n "$sign_token" ] || { show "$w/slots"; fail "both JPKI tokens present"; check_done; }
auth_uri="pkcs11:token=$(uri_enc "$auth_token")"
sign_uri="pkcs11:token=$(uri_enc "$sign_token")"
# Object labels (include/jpki-pkcs11.h).
auth_label="JPKI User Authentication"
sign_label="JPKI Digital Signature"

# card_stat NAME: a counter of the virtual card (`ctl stats`).
card_stat() {
    "$vc" ctl --control "$JPKI_TEST_CONTROL" stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# export_cert TOKEN ID OUT.pem [PIN]: reads a certificate through the module.
export_cert() {
    local login=()
    [ $# -ge 4 ] && login=(--login --pin "$4")
    # The phone token shows its authentication certificate only after the PIN
    # (docs/phone-token.md): read it as a person would there, logged in.
    if [ $# -lt 4 ] && [ "$2" = 01 ] && [ "${JPKI_TEST_PROFILE:-}" = phone ]; then
        login=(--login --pin 1234)
    fi
    p11 --token-label "$1" "${login[@]}" --read-object --type cert --id "$2" -o "$3.der" >/dev/null 2>&1
    openssl x509 -inform DER -in "$3.der" -out "$3"
}

# Whether the module offers RSA-PSS on the authentication token (a card whose own PSS mode was
# detected); TLS 1.3 client authentication depends on it.
module_has_pss() { p11 --token-label "$auth_token" -M 2>/dev/null | grep -qE '^ *RSA-PKCS-PSS\b'; }
