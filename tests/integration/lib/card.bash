# Set-up of the signer and log-in suites (tokens-config.sh, pdfsig.sh, libreoffice.sh,
# xmldsig.sh, pam.sh, pkcs11-provider.sh, gpgsm.sh); sourced, not run. It is lib/clients.bash
# (module, token labels, ok/not_ok/check/check_done, bg, show, card_stat) plus what these suites
# add: they run in their scratch dir $tmp, inspect a failing command's output instead of
# stopping at it (no `set -e`), and end with the guard check_no_pin_harm.
#
# Gives besides clients.bash: $tmp (= $w, the current directory), $auth_pin/$sign_pw, ctl,
# tries, new_nssdb, check_no_pin_harm.
source "$(dirname "${BASH_SOURCE[0]}")/clients.bash"
set +e
tmp=$w
cd "$tmp" || exit 2

# The virtual card's PINs (tests/virtual-card): never a real card's.
auth_pin=1234
sign_pw=ABC123

ctl() { "$vc" ctl --control "$JPKI_TEST_CONTROL" "$@"; }
# tries auth|sign: the PIN tries the card has left (read from the card, not the module).
tries() { ctl status | sed -n "s/.*$1_tries_left=\([0-9]*\).*/\1/p"; }

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
    check "no malformed VERIFY reached the card" test "$(card_stat malformed_verify_count)" -eq 0
}
