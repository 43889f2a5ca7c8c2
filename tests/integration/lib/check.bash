# Shared check functions of the shell suites.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
#   ok "what"          # prints "ok - what", counts a pass
#   not_ok "what"      # prints "not ok - what", counts a failure; the suite goes on
#   check "what" cmd…  # runs cmd; ok if exit 0 else not_ok
#   check_done         # prints "# SUITE: N passed, M failed"; exits 1 if M>0 (or if N=0), else 0
_check_passed=0
_check_failed=0

ok() {
    echo "ok - $*"
    _check_passed=$((_check_passed + 1))
}

not_ok() {
    echo "not ok - $*"
    _check_failed=$((_check_failed + 1))
}

check() {
    local what=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        ok "$what"
    else
        not_ok "$what"
        printf '%s\n' "$out" | tail -20 | sed 's/^/    /'
    fi
}

check_done() {
    echo "# SUITE: $_check_passed passed, $_check_failed failed"
    if [ "$_check_failed" -gt 0 ] || [ "$_check_passed" -eq 0 ]; then
        exit 1
    fi
    exit 0
}
