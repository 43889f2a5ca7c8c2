#!/usr/bin/env bash
# Hostile callers: tests/hostile/hostile.c loads the module with dlopen and calls every function
# with NULL pointers, short buffers, zero and huge lengths, invalid handles, wrong states and
# garbage templates, checking each CK_RV against the specification. Run natively (with fork and
# card removal), then once more under valgrind (no invalid access, no leak).
#
# Inside the harness: tests/harness/with-card.sh -- tests/integration/hostile.sh
set -euo pipefail

root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
export JPKI_VC=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

[ -e "$module" ] || { not_ok "module $module exists (cargo build --release --lib)"; check_done; }

# The PKCS#11 3.x header is committed (tests/hostile/include/pkcs11.h, public domain; origin in
# tests/hostile/README.md): the build needs nothing from the cargo registry or the system.
header_dir=$root/tests/hostile/include
[ -e "$header_dir/pkcs11.h" ] || { not_ok "$header_dir/pkcs11.h exists"; check_done; }

if cc -std=c99 -O1 -g -Wall -Wextra -Werror -I "$header_dir" \
    "$root/tests/hostile/hostile.c" -o "$scratch/hostile" -ldl 2>"$scratch/cc.log"; then
    ok "hostile.c builds against $header_dir/pkcs11.h"
else
    cat "$scratch/cc.log" >&2
    not_ok "hostile.c builds"
    check_done
fi

run() {
    local name=$1; shift
    if "$@" >"$scratch/$name.log" 2>"$scratch/$name.err"; then
        sed 's/^/    /' "$scratch/$name.log" | grep -v -e '^    ok - ' -e '^    calls tried' || true
        ok "$name: $(tail -n 1 "$scratch/$name.log")"
    else
        sed 's/^/    /' "$scratch/$name.log" "$scratch/$name.err" | tail -n 60
        not_ok "$name: $(tail -n 1 "$scratch/$name.log")"
    fi
}

run "hostile calls" "$scratch/hostile" "$module"

# Under valgrind: every invalid read/write, use of uninitialised memory or leak fails the run.
# No fork (the child would be checked too, and exits without finalising the parent's copy).
if command -v valgrind >/dev/null; then
    run "hostile calls under valgrind" valgrind --quiet --error-exitcode=1 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        "$scratch/hostile" "$module" --no-fork
else
    not_ok "valgrind installed (apt-get install valgrind)"
fi
check_done
