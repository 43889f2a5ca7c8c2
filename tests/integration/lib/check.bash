# Shared checks of the shell suites; sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
#   ok "what"          # prints "ok - what", counts a pass
#   not_ok "what"      # prints "not ok - what", counts a failure; the suite goes on
#   check "what" cmd…  # runs cmd; ok if exit 0 else not_ok
#   check_done         # prints "# SUITE: N passed, M failed"; exits 1 if M>0 (or if N=0), else 0
check_passed=0
check_failed=0
ok() { echo "ok - $*"; check_passed=$((check_passed + 1)); }
not_ok() { echo "not ok - $*"; check_failed=$((check_failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
check_done() {
    echo "# SUITE: $check_passed passed, $check_failed failed"
    [ "$check_failed" -eq 0 ] && [ "$check_passed" -gt 0 ]
    exit $?
}
