# Card and module helpers of the signer and log-in suites (pdfsig.sh, tokens-config.sh,
# pkcs11-provider.sh, pam.sh, xmldsig.sh, gpgsm.sh, libreoffice.sh); sourced after check.bash.
#
# Gives: $module, $vc, $tmp (scratch, removed on exit; the suite runs in it), ctl, stat_field,
# tries, $auth_token/$sign_token (labels), $auth_pin/$sign_pw (the virtual card's), new_nssdb,
# bg (background process stopped on exit).
set -uo pipefail
: "${JPKI_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
: "${JPKI_MODULE:=$JPKI_ROOT/target/release/libjpki_pkcs11.so}"
: "${JPKI_VC:=${JPKI_TEST_CARD_BIN:-$JPKI_ROOT/target/debug/jpki-virtual-card}}"
[ "${JPKI_PCSC_TEST:-}" = 1 ] || { echo "run me inside tests/harness/with-card.sh" >&2; exit 2; }
[ -r "$JPKI_MODULE" ] || { echo "module $JPKI_MODULE not found (cargo build --release --lib)" >&2; exit 2; }
module=$(realpath "$JPKI_MODULE")
vc=$JPKI_VC
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jpki-suite.XXXXXX")
bg_pids=()
card_cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap card_cleanup EXIT
cd "$tmp" || exit 2
bg() { "$@" & bg_pids+=("$!"); }

# The virtual card's PINs (tests/virtual-card): never a real card's.
auth_pin=1234
sign_pw=ABC123

ctl() { "$vc" ctl --control "$JPKI_TEST_CONTROL" "$@"; }
stat_field() { ctl stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
tries() { ctl status | sed -n "s/.*$1_tries_left=\([0-9]*\).*/\1/p"; }
# show FILE: its end on stderr (why a check failed).
show() { echo "--- $1" >&2; tail -n 30 "$1" >&2 || true; }

# Token labels as a user reads them (they carry the card's tag).
JPKI_PKCS11_TOKENS=all pkcs11-tool --module "$module" -L >"$tmp/slots.txt" 2>&1
auth_token=$(sed -n 's/^ *token label *: *\(JPKI Auth.*[^ ]\) *$/\1/p' "$tmp/slots.txt" | head -n 1)
sign_token=$(sed -n 's/^ *token label *: *\(JPKI Sign.*[^ ]\) *$/\1/p' "$tmp/slots.txt" | head -n 1)
[ -n "$auth_token" ] && [ -n "$sign_token" ] || { show "$tmp/slots.txt"; echo "no JPKI tokens" >&2; exit 1; }

# new_nssdb DIR: an NSS database without password, the module added as the README says.
new_nssdb() {
    mkdir -p "$1"
    certutil -N -d "sql:$1" --empty-password &&
        modutil -dbdir "sql:$1" -add jpki -libfile "$module" -force >/dev/null
}

# The guard of every suite: no try spent that the suite did not mean, nothing malformed sent.
check_no_pin_harm() { # check_no_pin_harm AUTH_TRIES SIGN_TRIES
    check "auth PIN has $1 tries left" test "$(tries auth)" -eq "$1"
    check "signature password has $2 tries left" test "$(tries sign)" -eq "$2"
    check "no malformed VERIFY reached the card" test "$(stat_field malformed_verify_count)" -eq 0
}
