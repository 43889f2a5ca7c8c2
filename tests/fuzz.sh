#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time (FUZZ_TOTAL_SECONDS, default 40, split
# evenly), starting from the committed corpus (fuzz/corpus/<target>, never modified here).
#
# The targets run under libFuzzer with coverage feedback and AddressSanitizer, through
# cargo-fuzz, which this script installs itself (pinned: CARGO_FUZZ_VERSION, into
# target/tools/, once; nothing is taken from an earlier run's ~/.cargo/bin). cargo-fuzz needs
# nightly features; on stable they are unlocked with RUSTC_BOOTSTRAP=1 (the only toolchain here
# is stable). If cargo-fuzz cannot be installed or its build fails, the same target bodies run on
# stable as bounded tests (fuzz/tests/bounded.rs: corpus, then corpus mutations and random
# inputs; no coverage feedback) — and the script says so.
#
#   tests/fuzz.sh                       # CI budget
#   FUZZ_TOTAL_SECONDS=1200 tests/fuzz.sh   # a longer run (prints executions and coverage)
#   FUZZ_ENGINE=stable tests/fuzz.sh    # force the stable runner
#
# Prints `ok - <target>: …` per target (tests/integration/lib/check.bash); exits non-zero on any
# crash or broken invariant.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/tests/integration/lib/check.bash"
total=${FUZZ_TOTAL_SECONDS:-40}
targets=(card_responses cert_der attribute_template stateful session_objects cardlink)
per=$((total / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The pinned cargo-fuzz, in the project's own tool directory.
cargo_fuzz_version=0.12.0
tools=$root/target/tools
export PATH=$tools/bin:$PATH:${CARGO_HOME:-$HOME/.cargo}/bin
engine=${FUZZ_ENGINE:-auto}
if [ "$engine" = auto ] &&
    [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    t0=$SECONDS
    if cargo install --locked --quiet --version "$cargo_fuzz_version" --root "$tools" cargo-fuzz \
        >"$scratch/install.log" 2>&1; then
        echo "# installed cargo-fuzz $cargo_fuzz_version into target/tools in $((SECONDS - t0)) s"
    else
        echo "# cargo install cargo-fuzz $cargo_fuzz_version failed:"
        tail -n 20 "$scratch/install.log" | sed 's/^/#   /'
    fi
fi
if [ "$engine" = auto ]; then
    if cargo fuzz --version >/dev/null 2>&1 &&
        (cd "$root" && RUSTC_BOOTSTRAP=1 cargo fuzz build -O >"$scratch/build.log" 2>&1); then
        engine=libfuzzer
    else
        engine=stable
        if cargo fuzz --version >/dev/null 2>&1; then
            echo "# cargo fuzz build failed (see below); falling back to the stable runner"
            tail -n 20 "$scratch/build.log" | sed 's/^/#   /'
        else
            echo "# cargo-fuzz could not be installed; using the stable runner"
        fi
    fi
fi

if [ "$engine" = libfuzzer ]; then
    echo "# libFuzzer via cargo fuzz (RUSTC_BOOTSTRAP=1), ${per} s per target"
    for t in "${targets[@]}"; do
        mkdir -p "$scratch/$t"
        log=$scratch/$t.log
        # New inputs go to the scratch directory; the committed corpus is only read.
        if (cd "$root" && RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
            -max_total_time="$per" -print_final_stats=1 -artifact_prefix="$scratch/" \
            >"$log" 2>&1); then
            execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
            cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
            ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
            corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
            ok "$t: ${execs:-?} executions in ${per} s, coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corpus:-?}"
        else
            not_ok "$t (libFuzzer found a failure)"
            grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 | sed 's/^/#   /'
            ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* 2>/dev/null | sed 's/^/#   artifact: /' || true
        fi
    done
else
    echo "# stable runner (no libFuzzer): ${per} s per target"
    for t in "${targets[@]}"; do
        log=$scratch/$t.log
        if (cd "$root/fuzz" && FUZZ_SECONDS=$per cargo test -q --no-default-features --release \
            --test bounded -- --exact "$t" --nocapture --test-threads=1 >"$log" 2>&1); then
            ok "$(grep -o "^.*$t: .*" "$log" | sed "s/^.*\($t: \)/\1/" | head -n 1)"
        else
            not_ok "$t"
            grep -E 'panicked|assert' "$log" | head -n 10 | sed 's/^/#   /'
        fi
    done
fi
check_done
