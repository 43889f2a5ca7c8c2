# The one way a shell suite reports its checks; sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
#   ok "what"          # prints "ok - what", counts a pass
#   not_ok "what"      # prints "not ok - what", counts a failure; the suite goes on
#   check "what" cmd…  # runs cmd; ok if exit 0 else not_ok
#   check_done         # prints "# SUITE: N passed, M failed"; exits 1 if M>0 (or if N=0), else 0
# One behaviour for every suite: a failure is reported and the suite goes on, so one run shows
# every broken behaviour; the summary line and the exit status say whether the suite passed. A
# suite that ran no check at all did not test anything, so it fails too.

check_passed=0
check_failed=0
check_suite=$(basename "$0")

ok() { echo "ok - $*"; check_passed=$((check_passed + 1)); }
not_ok() { echo "not ok - $*"; check_failed=$((check_failed + 1)); }
# Run inside `if`, so a failing cmd is a failed check even under `set -e`.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
check_done() {
    echo "# $check_suite: $check_passed passed, $check_failed failed"
    if [ "$check_failed" -gt 0 ] || [ "$check_passed" -eq 0 ]; then exit 1; fi
    exit 0
}
