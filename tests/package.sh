#!/usr/bin/env bash
# The Debian package, for real: builds it with `cargo deb`, installs it with dpkg on this machine,
# checks that every file is where programs look for it, runs client suites against the INSTALLED
# module (each in its own harness), and removes the package again.
#
#   bash tests/package.sh        (root; run by tests/run-all.sh outside the harness)
#
# Installs cargo-deb from crates.io when it is missing (`cargo install cargo-deb --locked`) and
# prints how long that took. Refuses to run when jpki-pkcs11 is already installed: it would remove
# a package it did not install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH=$PATH:/usr/sbin:$HOME/.cargo/bin
[ "$(id -u)" = 0 ] || { echo "package.sh: needs root (dpkg -i)" >&2; exit 2; }

failures=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

if dpkg-query -W -f='${Status}' jpki-pkcs11 2>/dev/null | grep -q 'install ok installed'; then
    echo "package.sh: jpki-pkcs11 is already installed; remove it first (dpkg -r jpki-pkcs11)" >&2
    exit 1
fi

if ! cargo deb --version >/dev/null 2>&1; then
    t0=$SECONDS
    cargo install cargo-deb --locked --quiet
    echo "# cargo install cargo-deb took $((SECONDS - t0)) s"
fi
echo "# $(cargo deb --version)"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
installed=/usr/lib/$multiarch/pkcs11/libjpki_pkcs11.so
out=$(mktemp -d "${TMPDIR:-/tmp}/jpki-deb.XXXXXX")
cleanup() {
    local rc=$?
    if dpkg-query -W -f='${Status}' jpki-pkcs11 2>/dev/null | grep -q 'install ok installed'; then
        dpkg -r jpki-pkcs11 >/dev/null 2>&1 || true
    fi
    rm -rf "$out"
    exit $rc
}
trap cleanup EXIT INT TERM

# --- build ---------------------------------------------------------------------------------
cargo build --release --lib --locked --quiet
# The README's command: the .deb goes to target/debian/, cargo-deb prints its path last.
cargo deb -p jpki-pkcs11 --no-build --multiarch=same >"$out/cargo-deb.log" 2>&1 \
    || { cat "$out/cargo-deb.log" >&2; exit 1; }
deb=$(tail -n 1 "$out/cargo-deb.log")
check "cargo deb built $(basename "$deb")" test -s "$deb"
check "package is Multi-Arch: same" test "$(dpkg-deb -f "$deb" Multi-Arch)" = same
check "package depends on libpcsclite1 (from the module's ELF, \$auto)" \
    bash -c "dpkg-deb -f '$deb' Depends | grep -q 'libpcsclite1'"
check "package recommends pcscd" test "$(dpkg-deb -f "$deb" Recommends)" = pcscd

# --- install ---------------------------------------------------------------------------------
dpkg -i "$deb" >"$out/dpkg-i.log" 2>&1 || { cat "$out/dpkg-i.log" >&2; not_ok "dpkg -i"; exit 1; }
ok "dpkg -i installs the package"
check "module at $installed" test -f "$installed"
check "installed module exports C_GetFunctionList and C_GetInterface" \
    bash -c "nm -D --defined-only '$installed' | grep -q ' T C_GetInterface\$' && nm -D --defined-only '$installed' | grep -q ' T C_GetFunctionList\$'"
check "p11-kit module file at /usr/share/p11-kit/modules/jpki-pkcs11.module" \
    grep -q '^module: libjpki_pkcs11.so$' /usr/share/p11-kit/modules/jpki-pkcs11.module
check "header at /usr/include/jpki-pkcs11.h" grep -q 'JPKI_PKCS11_AUTH_SLOT' /usr/include/jpki-pkcs11.h
check "docs in /usr/share/doc/jpki-pkcs11" \
    bash -c "test -s /usr/share/doc/jpki-pkcs11/README.md && test -s /usr/share/doc/jpki-pkcs11/copyright"
check "dpkg -L lists exactly the packaged files" \
    bash -c "test \$(dpkg -L jpki-pkcs11 | xargs -I{} sh -c 'test -f \"{}\" && echo {}' | wc -l) -eq 5"
# The header compiles against p11-kit's PKCS#11 header, as its comment says.
if [ -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ]; then
    printf '#include <p11-kit/pkcs11.h>\n#include <jpki-pkcs11.h>\nint main(void){CK_FUNCTION_LIST *f; return C_GetFunctionList(&f) == CKR_OK ? 0 : 1;}\n' > "$out/h.c"
    check "the installed header compiles and links against the installed module" \
        gcc -o "$out/h" "$out/h.c" -I/usr/include/p11-kit-1 "$installed"
fi

# --- use the installed module --------------------------------------------------------------------
harness=tests/harness/with-card.sh
p11kit_check() { # inside the harness: p11-kit loads the module through the packaged .module file
    # (its "module: libjpki_pkcs11.so" resolves in p11-kit's module directory, which is where
    # the package put it: nothing else on the machine has that file name in that directory)
    p11-kit list-modules 2>/dev/null \
        | awk '/^[^ ]/ { m = ($0 == "jpki-pkcs11: libjpki_pkcs11.so") } m' > "$out/p11kit.txt"
    grep -q "token: JPKI Auth" "$out/p11kit.txt" && grep -q "token: JPKI Sign" "$out/p11kit.txt"
}
export -f p11kit_check
export out installed
if command -v p11-kit >/dev/null; then
    check "p11-kit list-modules loads jpki-pkcs11 from its module directory and shows both tokens" \
        "$harness" -- bash -c p11kit_check
fi
for suite in nss ssh; do
    s=tests/integration/$suite.sh
    if [ ! -e "$s" ]; then
        echo "# $s not in this tree: skipped"
        continue
    fi
    if JPKI_MODULE=$installed "$harness" -- bash "$s" >"$out/$suite.log" 2>&1; then
        ok "$suite.sh passes against the installed module ($(grep -c '^ok - ' "$out/$suite.log") checks)"
    else
        not_ok "$suite.sh against the installed module"
        grep -v '^ok - ' "$out/$suite.log" | tail -20 | sed 's/^/    | /'
    fi
done

# --- remove ----------------------------------------------------------------------------------
dpkg -r jpki-pkcs11 >"$out/dpkg-r.log" 2>&1 && ok "dpkg -r removes the package" || not_ok "dpkg -r"
check "module and p11-kit file are gone" \
    bash -c "test ! -e '$installed' && test ! -e /usr/share/p11-kit/modules/jpki-pkcs11.module"

[ "$failures" -eq 0 ] || { echo "package.sh: $failures check(s) failed" >&2; exit 1; }
