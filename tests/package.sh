#!/usr/bin/env bash
# The Debian packages, for real: builds them with cargo-deb, checks them with lintian (any E: or
# W: line fails; I:/P: tags and overrides are listed), installs them with dpkg on this machine,
# checks that every file is where programs look for it, uses the INSTALLED files (jpki status
# against the virtual card, man jpki, the module through p11-kit and p11-kit-proxy, client
# suites), and removes the packages again.
#
#   bash tests/package.sh        (root; run by tests/run-all.sh outside the harness)
#
# Two packages, each from its crate's [package.metadata.deb]:
#   jpki-pkcs11  (Cargo.toml) the module, its card-link helper, its p11-kit file, header,
#                jpki-pkcs11(7); Multi-Arch: same
#   jpki         (cli/Cargo.toml) the jpki command and jpki(1); depends on jpki-pkcs11 (a
#                Multi-Arch: same package cannot hold /usr/bin/jpki)
#
# Needs nothing from an earlier run: cargo-deb is installed here, pinned, into target/tools/.
# Refuses to run when either package is already installed: it would remove a package it did not
# install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH=$PATH:/usr/sbin:${CARGO_HOME:-$HOME/.cargo}/bin
[ "$(id -u)" = 0 ] || { echo "package.sh: needs root (dpkg -i)" >&2; exit 2; }

source tests/integration/lib/check.bash

installed_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in jpki jpki-pkcs11; do
    if installed_pkg "$p"; then
        echo "package.sh: $p is already installed; remove it first (dpkg -r jpki jpki-pkcs11)" >&2
        exit 1
    fi
done

# --- tools: the pinned cargo-deb ------------------------------------------------------------------
cargo_deb_version=3.8.0
tools=$root/target/tools
export PATH=$tools/bin:$PATH
if [ "$("$tools/bin/cargo-deb" --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    t0=$SECONDS
    cargo install --locked --quiet --version "$cargo_deb_version" --root "$tools" cargo-deb
    echo "# installed cargo-deb $cargo_deb_version into target/tools in $((SECONDS - t0)) s"
fi
echo "# $("$tools/bin/cargo-deb" --version)"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
installed=/usr/lib/$multiarch/pkcs11/libjpki_pkcs11.so
installed_helper=/usr/lib/$multiarch/jpki-pkcs11/jpki-pkcs11-cardlink
proxy=/usr/lib/$multiarch/p11-kit-proxy.so
out=$(mktemp -d "${TMPDIR:-/tmp}/jpki-deb.XXXXXX")
cleanup() {
    local rc=$?
    installed_pkg jpki && { dpkg -r jpki >/dev/null 2>&1 || true; }
    installed_pkg jpki-pkcs11 && { dpkg -r jpki-pkcs11 >/dev/null 2>&1 || true; }
    rm -rf "$out"
    exit $rc
}
trap cleanup EXIT INT TERM

# --- build ---------------------------------------------------------------------------------------
# The README's commands: the .debs go to target/debian/, cargo-deb prints each path last.
build_module_package() {
    cargo build --release --lib --bin jpki-pkcs11-cardlink --locked --quiet
    cargo deb -p jpki-pkcs11 --no-build --multiarch=same >"$out/cargo-deb.log" 2>&1 \
        || { cat "$out/cargo-deb.log" >&2; exit 1; }
    tail -n 1 "$out/cargo-deb.log"
}
# The jpki command: the workspace member cli/ (crate jpki-cli), whose [package.metadata.deb]
# names the package jpki; its synopsis is that crate's description.
build_cli_package() {
    cargo build --release --locked --quiet -p jpki-cli --bin jpki
    cargo deb -p jpki-cli --no-build --multiarch=foreign >"$out/cargo-deb-cli.log" 2>&1 \
        || { cat "$out/cargo-deb-cli.log" >&2; exit 1; }
    tail -n 1 "$out/cargo-deb-cli.log"
}
deb=$(build_module_package)
cli_deb=$(build_cli_package)
check "cargo deb built $(basename "$deb")" test -s "$deb"
check "cargo deb built $(basename "$cli_deb")" test -s "$cli_deb"
check "jpki-pkcs11 is Multi-Arch: same" test "$(dpkg-deb -f "$deb" Multi-Arch)" = same
check "jpki-pkcs11 depends on libpcsclite1 (from the module's ELF, \$auto)" \
    bash -c "dpkg-deb -f '$deb' Depends | grep -q 'libpcsclite1'"
check "jpki-pkcs11 recommends pcscd" test "$(dpkg-deb -f "$deb" Recommends)" = pcscd
check "jpki depends on jpki-pkcs11" bash -c "dpkg-deb -f '$cli_deb' Depends | grep -qw 'jpki-pkcs11'"
check "jpki's synopsis is the command's" \
    bash -c "dpkg-deb -f '$cli_deb' Description | head -n 1 | grep -q '^command-line tool'"
for d in "$deb" "$cli_deb"; do
    p=$(dpkg-deb -f "$d" Package)
    check "$p: Maintainer has an address" bash -c "dpkg-deb -f '$d' Maintainer | grep -Eq '<[^@> ]+@[^@> ]+>'"
    dpkg-deb -x "$d" "$out/x-$p"
    check "$p: changelog.Debian.gz is a Debian changelog" \
        bash -c "zcat '$out/x-$p/usr/share/doc/$p/changelog.Debian.gz' | head -n 1 | grep -Eq '^jpki-pkcs11 \(0\.1\.0-1\) [a-z]+; urgency='"
    check "$p: copyright is machine-readable (DEP-5)" \
        bash -c "head -n 1 '$out/x-$p/usr/share/doc/$p/copyright' | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/'"
done

# --- lintian: no error, no warning ---------------------------------------------------------------
# --pedantic -I: every tag down to pedantic is shown; overrides (O:) are shown with their reason
# in packaging/debian/lintian-overrides.
lintian --pedantic -I --show-overrides "$deb" "$cli_deb" >"$out/lintian.log" 2>&1 || true
sed 's/^/#   lintian: /' "$out/lintian.log"
if grep -Eq '^[EW]: ' "$out/lintian.log"; then
    not_ok "lintian: no E: and no W: tag"
elif ! lintian --version >/dev/null 2>&1; then
    not_ok "lintian runs"
else
    ok "lintian: no E: and no W: tag ($(grep -c '^[IPO]: ' "$out/lintian.log" || true) I:/P:/O: lines above)"
fi

# --- every JPKI_* variable the module reads is documented -----------------------------------------
# Test-only variables (JPKI_TEST_*, read by tests, never by src/) are excluded by name pattern.
mapfile -t vars < <(grep -rhoE '"JPKI_[A-Z0-9_]+"' src | tr -d '"' | sort -u)
documented=0
for v in "${vars[@]}"; do
    case $v in JPKI_TEST_*) echo "# $v: test-only, not documented for users"; continue ;; esac
    documented=$((documented + 1))
    check "$v is named in packaging/man/jpki-pkcs11.7 and README.md" \
        bash -c "grep -qw '$v' packaging/man/jpki-pkcs11.7 && grep -qw '$v' README.md"
done
check "src/ reads at least one JPKI_* variable (the check above is not empty)" test "$documented" -gt 0

# --- install -------------------------------------------------------------------------------------
dpkg -i "$deb" "$cli_deb" >"$out/dpkg-i.log" 2>&1 || { cat "$out/dpkg-i.log" >&2; not_ok "dpkg -i"; check_done; }
ok "dpkg -i installs jpki-pkcs11 and jpki"
check "module at $installed" test -f "$installed"
check "installed module exports C_GetFunctionList and C_GetInterface" \
    bash -c "nm -D --defined-only '$installed' | grep -q ' T C_GetInterface\$' && nm -D --defined-only '$installed' | grep -q ' T C_GetFunctionList\$'"
check "p11-kit module file at /usr/share/p11-kit/modules/jpki-pkcs11.module" \
    grep -q '^module: libjpki_pkcs11.so$' /usr/share/p11-kit/modules/jpki-pkcs11.module
check "header at /usr/include/jpki-pkcs11.h" grep -q 'JPKI_PKCS11_AUTH_SLOT' /usr/include/jpki-pkcs11.h
check "docs in /usr/share/doc/jpki-pkcs11" \
    bash -c "test -s /usr/share/doc/jpki-pkcs11/README.md && test -s /usr/share/doc/jpki-pkcs11/copyright"
check "/usr/bin/jpki is executable" test -x /usr/bin/jpki
files() { dpkg -L "$1" | while read -r f; do [ -f "$f" ] && echo "$f"; done | wc -l; }
check "card-link helper at $installed_helper, executable" test -x "$installed_helper"
# module, card-link helper, p11-kit file, header, README, man page, copyright, changelog,
# lintian overrides
check "dpkg -L jpki-pkcs11 lists exactly its 9 files" test "$(files jpki-pkcs11)" -eq 9
# jpki, man page, copyright, changelog, lintian overrides
check "dpkg -L jpki lists exactly its 5 files" test "$(files jpki)" -eq 5
check "man jpki shows jpki(1)" bash -c "MANPAGER=cat MANWIDTH=80 man jpki 2>/dev/null | grep -q 'jpki status'"
check "man 7 jpki-pkcs11 shows the module's page" \
    bash -c "MANPAGER=cat MANWIDTH=80 man 7 jpki-pkcs11 2>/dev/null | grep -q 'JPKI_PKCS11_SIGN_CERT_LOOKUP'"
# The header compiles against p11-kit's PKCS#11 header, as its comment says.
if [ -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ]; then
    printf '#include <p11-kit/pkcs11.h>\n#include <jpki-pkcs11.h>\nint main(void){CK_FUNCTION_LIST *f; return C_GetFunctionList(&f) == CKR_OK ? 0 : 1;}\n' > "$out/h.c"
    check "the installed header compiles and links against the installed module" \
        gcc -o "$out/h" "$out/h.c" -I/usr/include/p11-kit-1 "$installed"
else
    not_ok "p11-kit's pkcs11.h (libp11-kit-dev) to compile the installed header against"
fi

# --- use the installed files against the virtual card ----------------------------------------------
harness=tests/harness/with-card.sh
if "$harness" -- /usr/bin/jpki status >"$out/status.txt" 2>&1 &&
    grep -q 'My Number Card: yes' "$out/status.txt" &&
    grep -q 'Tries left: authentication PIN 3/3' "$out/status.txt"; then
    ok "jpki status (installed /usr/bin/jpki) finds the card and its PIN tries"
else
    not_ok "jpki status (installed /usr/bin/jpki) finds the card and its PIN tries"
    sed 's/^/    | /' "$out/status.txt"
fi
p11kit_check() { # inside the harness: p11-kit loads the module through the packaged .module file
    # (its "module: libjpki_pkcs11.so" resolves in p11-kit's module directory, which is where
    # the package put it: nothing else on the machine has that file name in that directory)
    p11-kit list-modules 2>/dev/null \
        | awk '/^[^ ]/ { m = ($0 == "jpki-pkcs11: libjpki_pkcs11.so") } m' > "$out/p11kit.txt"
    grep -q "token: JPKI Auth" "$out/p11kit.txt" && grep -q "token: JPKI Sign" "$out/p11kit.txt"
}
proxy_check() { # inside the harness: a program that loads only p11-kit-proxy.so sees the tokens
    pkcs11-tool --module "$proxy" -L > "$out/proxy.txt" 2>&1
    grep -q "JPKI Auth" "$out/proxy.txt" && grep -q "JPKI Sign" "$out/proxy.txt"
}
# A host that forbids threads (as NSS does): the installed module finds the installed helper
# (from its own directory) and reaches the card through it. no_threads.c checks that the helper
# is its child while it holds the card; the log must not say that no helper was found.
cat > "$out/no_threads.c" <<'C'
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>
/* Children of this process whose name is the helper's (comm: its first 15 bytes). */
static int helpers(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    char path[300], buf[512];
    if (!d) return -1;
    while ((e = readdir(d))) {
        FILE *f;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *close = strrchr(buf, ')');
            int ppid = 0;
            if (close && sscanf(close + 2, "%*c %d", &ppid) == 1 && ppid == getpid()
                && strstr(buf, "(jpki-pkcs11-car)"))
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}
int main(int argc, char **argv) {
    void *lib = dlopen(argv[1], RTLD_NOW);
    CK_C_GetFunctionList get;
    CK_FUNCTION_LIST *f;
    CK_C_INITIALIZE_ARGS args = {0};
    CK_TOKEN_INFO info;
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    int during, after;
    if (argc < 2 || !lib) return 10;
    get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get || get(&f) != CKR_OK) return 11;
    args.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
    if (f->C_Initialize(&args) != CKR_OK) return 12;
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n == 0) return 13;
    if (f->C_GetTokenInfo(slots[0], &info) != CKR_OK) return 14;
    during = helpers();
    f->C_Finalize(NULL);
    after = helpers();
    printf("token: %.32s\nhelpers while initialised: %d, after C_Finalize: %d\n", info.label,
           during, after);
    return during == 1 && after == 0 ? 0 : 1;
}
C
no_threads_check() { # inside the harness
    JPKI_PKCS11_LOG=warn "$out/no_threads" "$installed" >"$out/no_threads.txt" 2>&1 &&
        grep -q 'token: JPKI' "$out/no_threads.txt" &&
        ! grep -Eqi 'card.?link' "$out/no_threads.txt"
}
export -f p11kit_check proxy_check no_threads_check
export out installed proxy
if gcc -o "$out/no_threads" "$out/no_threads.c" -I/usr/include/p11-kit-1 -ldl &&
    "$harness" -- bash -c no_threads_check; then
    ok "without threads (CKF_LIBRARY_CANT_CREATE_OS_THREADS) the installed module reaches the card through the installed helper"
else
    not_ok "without threads (CKF_LIBRARY_CANT_CREATE_OS_THREADS) the installed module reaches the card through the installed helper"
    sed 's/^/    | /' "$out/no_threads.txt" 2>/dev/null || true
fi
check "p11-kit list-modules loads jpki-pkcs11 from its module directory and shows both tokens" \
    "$harness" -- bash -c p11kit_check
if "$harness" -- bash -c proxy_check; then
    ok "pkcs11-tool --module $proxy -L shows both tokens"
else
    not_ok "pkcs11-tool --module $proxy -L shows both tokens"
    sed 's/^/    | /' "$out/proxy.txt"
fi
for suite in nss ssh; do
    s=tests/integration/$suite.sh
    if [ ! -e "$s" ]; then
        not_ok "$s exists"
        continue
    fi
    if JPKI_MODULE=$installed "$harness" -- bash "$s" >"$out/$suite.log" 2>&1; then
        ok "$suite.sh passes against the installed module ($(grep -c '^ok - ' "$out/$suite.log") checks)"
    else
        not_ok "$suite.sh against the installed module"
        grep -v '^ok - ' "$out/$suite.log" | tail -20 | sed 's/^/    | /'
    fi
done

# --- remove --------------------------------------------------------------------------------------
if dpkg -r jpki jpki-pkcs11 >"$out/dpkg-r.log" 2>&1; then ok "dpkg -r removes both packages"; else not_ok "dpkg -r"; fi
check "module, helper, p11-kit file, jpki and the man pages are gone" \
    bash -c "test ! -e '$installed' && test ! -e '$installed_helper' && test ! -e /usr/share/p11-kit/modules/jpki-pkcs11.module && test ! -e /usr/bin/jpki && test ! -e /usr/share/man/man1/jpki.1.gz && test ! -e /usr/share/man/man7/jpki-pkcs11.7.gz"

check_done
