# What a suite run inside tests/harness/with-card.sh finds; sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/paths.bash"
#   need_module / need_cli   # "not ok" and exit 1 when the build is missing
# Sets: root (the repository), module ($JPKI_MODULE, else the release build), vc (the virtual
# card binary: $JPKI_VC, else the harness's), cli ($JPKI_CLI, else the newer of
# target/release/jpki and target/debug/jpki: run-all.sh builds all targets in debug).
# Fails at once outside the harness.

root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}}
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"
cli=${JPKI_CLI:-}
if [ -z "$cli" ]; then
    for c in "$root/target/release/jpki" "$root/target/debug/jpki"; do
        if [ -x "$c" ] && { [ -z "$cli" ] || [ "$c" -nt "$cli" ]; }; then cli=$c; fi
    done
fi
need_module() {
    [ -f "$module" ] || { echo "not ok - module $module missing (cargo build --release --lib)"; exit 1; }
}
need_cli() {
    [ -x "$cli" ] || { echo "not ok - jpki binary not built (cargo build --release --bin jpki)"; exit 1; }
}
