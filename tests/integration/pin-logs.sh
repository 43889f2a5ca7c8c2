#!/usr/bin/env bash
# PIN safety in logs: the module runs at the most verbose log level (JPKI_PKCS11_LOG=trace)
# through logins (right, wrong, malformed, lower-case), signatures on both tokens and a PIN
# change and back, driven by OpenSC's pkcs11-tool; then every log of the run — the module's
# stderr, pcscd's log, the card's log and its APDU log — is searched for every PIN used, as
# ASCII and as hex. Also checks that no try was left spent and no malformed PIN reached the
# card.
#
# Inside the harness: tests/harness/with-card.sh -- tests/integration/pin-logs.sh
set -euo pipefail

root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}}
work=${JPKI_TEST_WORKDIR:?run inside tests/harness/with-card.sh}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

stderr_log=$scratch/module-stderr.log
: > "$stderr_log"
# pkcs11-tool with the module at trace level; its own output is not a log of ours.
tool() {
    JPKI_PKCS11_LOG=trace pkcs11-tool --module "$module" "$@" >>"$scratch/tool.out" 2>>"$stderr_log"
}
expect_ok() {
    local what=$1; shift
    if tool "$@"; then ok "$what"; else not_ok "$what"; fi
}
expect_fail() {
    local what=$1; shift
    if tool "$@"; then not_ok "$what (succeeded)"; else ok "$what"; fi
}

printf 'pin-logs test data\n' > "$scratch/data"
expect_ok "login with the auth PIN, list objects" --slot 0 --login --pin 1234 --list-objects
expect_ok "sign with the auth key" --slot 0 --login --pin 1234 --sign \
    --mechanism SHA256-RSA-PKCS --id 01 -i "$scratch/data" -o "$scratch/sig-auth"
expect_ok "sign with the signature key" --slot 1 --login --pin ABC123 --sign \
    --mechanism SHA256-RSA-PKCS --id 02 -i "$scratch/data" -o "$scratch/sig-sign"
expect_ok "lower-case signature password" --slot 1 --login --pin abc123 --list-objects
expect_fail "wrong auth PIN refused" --slot 0 --login --pin 9999 --list-objects
expect_fail "malformed auth PIN refused" --slot 0 --login --pin 12a4 --list-objects
expect_fail "auth PIN on the signature token refused" --slot 1 --login --pin 1234 --list-objects
expect_ok "change the auth PIN" --slot 0 --login --pin 1234 --change-pin --new-pin 4321
expect_ok "and back" --slot 0 --login --pin 4321 --change-pin --new-pin 1234
expect_ok "login again (restores the try spent)" --slot 0 --login --pin 1234 --list-objects

# The run did log, and did send VERIFYs (redacted in the card's APDU log).
if grep -q 'jpki-pkcs11 \[DEBUG\] > 00 20 00 80' "$stderr_log"; then
    ok "the module logged its VERIFY commands ($(wc -l < "$stderr_log") log lines)"
else
    not_ok "the module logged at trace level"
fi
apdu_log=${JPKI_TEST_APDU_LOG:-$work/card0.apdu}
if grep -q '<redacted len=4 format=ok>' "$apdu_log" && grep -q '<redacted len=6 format=ok>' "$apdu_log"; then
    ok "VERIFYs of both PINs reached the card ($(grep -c '<redacted' "$apdu_log") redacted in its APDU log)"
else
    not_ok "VERIFYs in the APDU log"
fi

# Every PIN used, as ASCII (a whole word: a timestamp may hold the digits) and as hex (with or
# without spaces, any case).
pins=(1234 ABC123 abc123 4321 9999 12a4)
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
spaced() { printf '%s' "$1" | od -An -tx1 | sed 's/^ //; s/ *$//' | tr -d '\n'; }
logs=("$stderr_log" "$work/pcscd.log" "$work/card0.log" "$apdu_log")
for log in "${logs[@]}"; do
    [ -f "$log" ] || { not_ok "log $log exists"; continue; }
    # The APDU log starts each line with a millisecond timestamp: leave it out.
    if [ "$log" = "$apdu_log" ]; then
        cut -d' ' -f2- "$log" > "$scratch/searched"
    else
        cp "$log" "$scratch/searched"
    fi
    found=""
    for pin in "${pins[@]}"; do
        if grep -qE "(^|[^0-9A-Za-z])${pin}([^0-9A-Za-z]|$)" "$scratch/searched" ||
            grep -qi "$(hex "$pin")" "$scratch/searched" ||
            grep -qi "$(spaced "$pin")" "$scratch/searched"; then
            found="$found $pin"
        fi
    done
    if [ -z "$found" ]; then
        ok "no PIN in $(basename "$log") ($(wc -l < "$log") lines)"
    else
        not_ok "PIN(s)$found in $log"
    fi
done

status=$("$vc" ctl --control "$JPKI_TEST_CONTROL" status)
case "$status" in
    *auth_tries_left=3*sign_tries_left=5*) ok "no try left spent: $status" ;;
    *) not_ok "tries: $status" ;;
esac
stats=$("$vc" ctl --control "$JPKI_TEST_CONTROL" stats)
if printf '%s' "$stats" | grep -q '"malformed_verify_count":0,'; then
    ok "no malformed PIN reached the card"
else
    not_ok "malformed PINs reached the card: $stats"
fi
check_done
