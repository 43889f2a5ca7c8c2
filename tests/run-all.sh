#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run runs.
#
#   bash tests/run-all.sh
#
# 1. installs (as root) or names (as a user) the Debian/Python packages it needs;
# 2. builds the workspace, checks formatting and clippy;
# 3. runs the unit tests (in-process transport + virtual card library): a plain `cargo test`,
#    which lists the pcscd-backed tests as ignored;
# 4. for each virtual-card profile (conservative, extended): runs every Rust integration test
#    (tests/*.rs) with --include-ignored, so the pcscd-backed tests run, and every integration
#    suite (tests/integration/*.sh) through the real PC/SC stack, each in a fresh harness
#    (private pcscd + vpcd + virtual card);
# 5. runs the extra suites that exist (packaging, fuzzing, APDU-count benchmark).
# It goes on after a failure and ends with one line "suite: N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export JPKI_ROOT="$root"
export CARGO_TERM_COLOR=never

passed=0
failed=0
failures=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/jpki-suite.XXXXXX")

step() { # step NAME CMD...: runs CMD, tallies it, shows its output only on failure (or VERBOSE=1)
    local name=$1; shift
    local log="$logdir/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
    local t0=$SECONDS
    if [ -n "${VERBOSE:-}" ]; then
        "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
    else
        "$@" >"$log" 2>&1; rc=$?
    fi
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-58s %4ds\n' "$name" $((SECONDS - t0))
        # Keep the test runners' own closing lines visible.
        grep -E '^test result:|^ok - ' "$log" | sed 's/^/      /' | tail -n 40
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %-58s %4ds (exit %d)\n' "$name" $((SECONDS - t0)) "$rc"
        tail -n 60 "$log" | sed 's/^/      | /'
    fi
}

echo "== dependencies"
bash tests/deps/install.sh || { echo "suite: 0 passed, 1 failed"; exit 1; }
# cargo's own bin directory (rustup's proxies live there); the cargo tools a step needs
# (cargo-deb, cargo-fuzz) are installed by that step, pinned, under target/tools/.
export PATH=$PATH:/usr/sbin:${CARGO_HOME:-$HOME/.cargo}/bin

echo "== build"
step "cargo build (workspace, all targets)" cargo build --workspace --all-targets --locked
step "cargo build --release --lib --bins (the module and its card-link helper)" cargo build --release --lib --bins --locked
export JPKI_MODULE=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
export JPKI_VC=$root/target/debug/jpki-virtual-card
if cargo fmt --version >/dev/null 2>&1; then step "cargo fmt --check" cargo fmt --all --check; fi
if cargo clippy --version >/dev/null 2>&1; then
    step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
fi

echo "== unit tests"
step "cargo test (unit and in-process tests)" cargo test --workspace --locked

harness=tests/harness/with-card.sh
for profile in conservative extended; do
    echo "== integration through pcscd, profile $profile"
    for t in tests/*.rs; do
        name=$(basename "$t" .rs)
        # One card here: the two-card test runs in its own step below (libtest counts it as
        # filtered out, not as passed).
        skip=()
        [ "$name" = environment ] && skip=(--skip two_readers_two_cards)
        step "[$profile] cargo test --test $name" \
            "$harness" --profile "$profile" -- cargo test -q --locked --test "$name" -- --include-ignored --test-threads=1 "${skip[@]}"
    done
    # The virtual card's own test through pcscd (how vpcd surfaces its extended-APDU modes).
    step "[$profile] cargo test -p jpki-virtual-card --test pcsc_extended" \
        "$harness" --profile "$profile" -- cargo test -q --locked -p jpki-virtual-card --test pcsc_extended -- --include-ignored
    for s in tests/integration/*.sh; do
        [ -e "$s" ] || continue
        step "[$profile] $(basename "$s")" "$harness" --profile "$profile" -- bash "$s"
    done
done

echo "== two readers, two cards"
step "[2 cards] cargo test --test environment" \
    "$harness" --cards 2 -- cargo test -q --locked --test environment -- --include-ignored --test-threads=1

echo "== the smartphone token (virtual card profile phone)"
# The suites that must hold on the phone token too (docs/phone-token.md). pkcs11-tool.sh and
# tls.sh read the authentication certificate after login there, as a person would; jpki-cli.sh
# skips the card-info application, which the phone does not have; firefox.sh logs in before it
# looks for the certificate (the phone token claims no CKP_PUBLIC_CERTIFICATES_TOKEN), and so
# does chromium.sh unchanged; ssh.sh checks that `ssh-keygen -D` and `ssh -I` find no
# authentication key before login there, and logs in through `ssh-add -s` and ssh-agent.
for s in phone history notify pkcs11-tool tls firefox chromium ssh jpki-cli; do
    step "[phone] $s.sh" "$harness" --profile phone -- bash "tests/integration/$s.sh"
done

echo "== other suites"
[ -x tests/package.sh ] && step "Debian package: build, install, use" bash tests/package.sh
[ -x tests/fuzz.sh ] && step "fuzzing (short budget)" bash tests/fuzz.sh
[ -x tests/bench/run.sh ] && step "APDU-count benchmark (short)" bash tests/bench/run.sh --short

echo
if [ $failed -gt 0 ]; then
    echo "Failed steps (logs in $logdir):"
    for f in "${failures[@]}"; do echo "  - $f"; done
fi
echo "suite: $passed passed, $failed failed"
[ $failed -eq 0 ]
