#!/usr/bin/env bash
# Card-traffic benchmark: the same client sequences against our module and OpenSC's, on the
# same virtual card, counted by the card itself (APDUs, bytes each way) and timed.
#
#   tests/bench/run.sh [--short] [--update] [--profile conservative|extended]...
#
#   --short    our module only, zero latency, one run per sequence: the CI check (seconds).
#              Fails if any sequence's APDU count is above tests/bench/expected-apdus.txt.
#   --update   (full mode) write the result tables into BENCHMARKS.md between its markers.
#   --profile  virtual-card profile(s) to run (default: both).
#
# Our module runs twice per sequence: "jpki" cold (an empty certificate cache for every process:
# what a first process on a card pays, and what every process pays with the cache off) and
# "jpki-warm" (a cache filled by one earlier start-up process on the same card: what every later
# process of any client pays).
#
# Without --short: our module, OpenSC with its default driver probing ("opensc") and OpenSC
# with the jpki driver forced ("opensc-jpki"), at zero latency (median of 3 runs: module
# overhead) and at the assumed latency of a contact card (LATENCY_APDU_MS per APDU plus
# LATENCY_SIGN_MS per signature, see BENCHMARKS.md); callgrind instruction counts per C_Sign;
# start-up memory and C_Initialize time. Results: target/bench/results.{tsv,md}.
#
# The APDU-count check runs in both modes. Inside a harness already (JPKI_TEST_CONTROL set,
# e.g. `tests/harness/with-card.sh -- tests/bench/run.sh --short`), only that harness's profile is
# measured. tests/run-all.sh calls it from outside: one harness per profile.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out_dir=${JPKI_BENCH_OUT:-$root/target/bench}
expected=$here/expected-apdus.txt
: "${LATENCY_APDU_MS:=30}" "${LATENCY_SIGN_MS:=400}"
OPENSC_MODULE=${OPENSC_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
AUTH_PIN=1234
SIGN_PASSWORD=ABC123

short=""
update=""
inside=""
profiles=()
while [ $# -gt 0 ]; do
    case "$1" in
        --short) short=1; shift ;;
        --update) update=1; shift ;;
        --profile) profiles+=("$2"); shift 2 ;;
        --inside) inside=1; shift ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
# The client's own speed does not enter the APDU counts: the CI check uses the debug build
# that `cargo build --all-targets` made anyway; timings use the release build.
if [ -n "$short" ]; then
    client=$root/target/debug/examples/bench_client
else
    client=$root/target/release/examples/bench_client
fi

# ---------------------------------------------------------------------------------------------
# Inside the harness: measure one profile, append rows to $out_dir/results.tsv.
# ---------------------------------------------------------------------------------------------
measure_profile() {
    local profile=$JPKI_TEST_PROFILE
    local vc=(${JPKI_VC:-$JPKI_TEST_CARD_BIN} ctl --control "$JPKI_TEST_CONTROL")
    local scratch
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/jpki-bench.XXXXXX")
    # OpenSC keeps no state between processes here: a private HOME (no file cache).
    export HOME=$scratch/home
    mkdir -p "$HOME"
    printf 'app default {\n  card_drivers = jpki;\n}\n' > "$scratch/opensc-jpki.conf"

    stat_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
    # run_seq MODULE_NAME LATENCY_NAME SEQ CMD... : one measured process.
    run_seq() {
        local mname=$1 lat=$2 seq=$3; shift 3
        if [ "$mname" = jpki ]; then
            # Cold: nothing cached from an earlier process.
            rm -rf "$scratch/cache-cold"
            export XDG_CACHE_HOME=$scratch/cache-cold
        fi
        "${vc[@]}" reset-stats >/dev/null
        local t0 t1 rc=0
        t0=$(date +%s%N)
        "$@" >"$scratch/out" 2>"$scratch/err" || rc=$?
        t1=$(date +%s%N)
        local st
        st=$("${vc[@]}" stats)
        if [ "$rc" != 0 ]; then
            echo "run.sh: $mname $seq failed (rc=$rc):" >&2
            { tail -n 5 "$scratch/err"; tail -n 5 "$scratch/out"; } >&2 || true
            echo "$profile	$mname	$lat	$seq	FAIL	0	0	0" >> "$out_dir/results.tsv"
            return 0
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$mname" "$lat" "$seq" \
            "$(echo "$st" | stat_field apdus)" "$(echo "$st" | stat_field command_bytes)" \
            "$(echo "$st" | stat_field response_bytes)" \
            "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')" \
            >> "$out_dir/results.tsv"
        # Per-call results the client measured itself (signatures 2 and 10, start-up detail).
        { grep '^RESULT ' "$scratch/out" || true; } | while read -r _ name rest; do
            case "$name" in
                sign2|sign10)
                    local a c r m
                    a=$(echo "$rest" | sed -n 's/.*apdus=\([0-9]*\).*/\1/p')
                    c=$(echo "$rest" | sed -n 's/.*cmd_bytes=\([0-9]*\).*/\1/p')
                    r=$(echo "$rest" | sed -n 's/.*resp_bytes=\([0-9]*\).*/\1/p')
                    m=$(echo "$rest" | sed -n 's/.*ms=\([0-9.]*\).*/\1/p')
                    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$mname" "$lat" \
                        "auth_$name" "$a" "$c" "$r" "$m" >> "$out_dir/results.tsv" ;;
                startup_detail)
                    echo "$profile	$mname	$lat	$rest" >> "$out_dir/details.txt" ;;
            esac
        done
    }

    # TLS 1.2 client authentication: NSS tstclnt against openssl s_server -Verify 2.
    local certs=$scratch/certs port=44330
    "$JPKI_TEST_CARD_BIN" export --state "$JPKI_TEST_STATE" --out "$certs" >/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$scratch/server.key" \
        -out "$scratch/server.pem" -subj /CN=127.0.0.1 -days 2 2>/dev/null
    openssl s_server -accept "127.0.0.1:$port" -cert "$scratch/server.pem" \
        -key "$scratch/server.key" -CAfile "$certs/auth_ca_cert.pem" -Verify 2 -tls1_2 -www \
        -quiet >"$scratch/s_server.log" 2>&1 &
    local server_pid=$!
    # shellcheck disable=SC2064
    trap "kill $server_pid 2>/dev/null || true" EXIT
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    tls_setup() { # MODULE_NAME SO CONF -> prints the client certificate's nickname
        local db=$scratch/nss-$1
        if [ ! -d "$db" ]; then
            mkdir -p "$db"
            certutil -N -d "sql:$db" --empty-password </dev/null
            modutil -dbdir "sql:$db" -add card -libfile "$2" -force </dev/null >/dev/null
        fi
        case "$1" in
            jpki|jpki-warm)
                local label
                label=$(pkcs11-tool --module "$2" -L 2>/dev/null </dev/null |
                    sed -n 's/^ *token label *: \(JPKI Auth.*\)$/\1/p' | head -1 | sed 's/ *$//')
                echo "$label:JPKI User Authentication" ;;
            *) echo "JPKI (User Authentication PIN):User Authentication Certificate" ;;
        esac
    }
    printf 'GET / HTTP/1.0\r\n\r\n' > "$scratch/request"
    tls_run() { # DB NICK  (-A: the request from a file; reading stdin, tstclnt never exits)
        timeout 120 tstclnt -h 127.0.0.1 -p "$port" -d "sql:$1" -n "$2" -w "$AUTH_PIN" \
            -V tls1.2:tls1.2 -o -A "$scratch/request" </dev/null > "$scratch/tls.out" 2>&1 &&
            grep -q "Client certificate" "$scratch/tls.out"
    }

    local mods=(jpki jpki-warm)
    [ -z "$short" ] && mods+=(opensc opensc-jpki)
    local lats=(zero)
    [ -z "$short" ] && lats+=(real)
    for lat in "${lats[@]}"; do
        case "$lat" in
            zero) "${vc[@]}" latency 0 0 >/dev/null ;;
            real) "${vc[@]}" latency "$LATENCY_APDU_MS" "$LATENCY_SIGN_MS" >/dev/null ;;
        esac
        local reps=1
        [ -z "$short" ] && [ "$lat" = zero ] && reps=3
        for mname in "${mods[@]}"; do
            local so conf
            case "$mname" in
                jpki|jpki-warm|opensc) so=$module; [ "$mname" = opensc ] && so=$OPENSC_MODULE; conf="" ;;
                opensc-jpki) so=$OPENSC_MODULE; conf=$scratch/opensc-jpki.conf ;;
            esac
            if [ "$mname" = opensc-jpki ]; then export OPENSC_CONF=$conf; else unset OPENSC_CONF; fi
            # The certificate cache: a throw-away one for the setup, then the one measured.
            export XDG_CACHE_HOME=$scratch/cache-setup
            local nick
            nick=$(tls_setup "$mname" "$so")
            if [ "$mname" = jpki-warm ]; then
                # Warm: one earlier start-up process filled the cache for this card and reader.
                rm -rf "$scratch/cache-warm"
                export XDG_CACHE_HOME=$scratch/cache-warm
                "$client" startup "$so" >/dev/null 2>&1
            fi
            for _ in $(seq 1 "$reps"); do
                run_seq "$mname" "$lat" startup "$client" startup "$so"
                run_seq "$mname" "$lat" list pkcs11-tool --module "$so" -L
                run_seq "$mname" "$lat" objects pkcs11-tool --module "$so" -O
                run_seq "$mname" "$lat" auth_sign "$client" sign "$so" 0 "$AUTH_PIN" 1
                run_seq "$mname" "$lat" auth_sign_x10 "$client" sign "$so" 0 "$AUTH_PIN" 10
                run_seq "$mname" "$lat" sign_sign "$client" sign "$so" 1 "$SIGN_PASSWORD" 1
                run_seq "$mname" "$lat" tls12 tls_run "$scratch/nss-$mname" "$nick"
            done
        done
    done

    if [ -z "$short" ]; then
        # CPU per C_Sign inside the module (the card is another process: not counted).
        # Instructions of N = 1 and N = 11 signatures; the difference / 10 is one C_Sign.
        "${vc[@]}" latency 0 0 >/dev/null
        for mname in jpki opensc-jpki; do
            local so=$module
            [ "$mname" = jpki ] || so=$OPENSC_MODULE
            export OPENSC_CONF=$scratch/opensc-jpki.conf
            local n ir=()
            for n in 1 11; do
                valgrind --tool=callgrind --toggle-collect=C_Sign \
                    --callgrind-out-file="$scratch/cg.$mname.$n" \
                    "$client" sign "$so" 0 "$AUTH_PIN" "$n" >/dev/null 2>"$scratch/cg.err" ||
                    { cat "$scratch/cg.err" >&2; return 1; }
                ir+=("$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$scratch/cg.$mname.$n")")
            done
            local verify=0
            if [ "$mname" = jpki ] && command -v callgrind_annotate >/dev/null; then
                # Our C_Sign checks every signature in software (RSA public operation).
                verify=$(callgrind_annotate --inclusive=yes --threshold=100 \
                    "$scratch/cg.$mname.11" 2>/dev/null |
                    grep 'SignatureScheme>::verify ' | head -1 | awk '{gsub(",", "", $1); print $1}')
                verify=$(( ${verify:-0} / 11 ))
            fi
            echo "$profile	$mname	callgrind	ir_1=${ir[0]} ir_11=${ir[1]} per_sign=$(( (ir[1] - ir[0]) / 10 )) verify_per_sign=$verify" \
                >> "$out_dir/details.txt"
        done
    fi
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    trap - EXIT
    rm -rf "$scratch"
}

if [ -n "$inside" ]; then
    measure_profile
    exit $?
fi

# ---------------------------------------------------------------------------------------------
# Outside: build, run one harness per profile, then report and check.
# ---------------------------------------------------------------------------------------------
if [ -z "${JPKI_BENCH_NO_BUILD:-}" ]; then
    (
        cd "$root"
        cargo build --locked --release --lib --bin jpki-pkcs11-cardlink -q # the helper NSS clients use
        cargo build --locked -p jpki-virtual-card -q
        if [ -n "$short" ]; then
            cargo build --locked --example bench_client -q
        else
            cargo build --locked --release --example bench_client -q
        fi
    )
fi
mkdir -p "$out_dir"
: > "$out_dir/results.tsv"
: > "$out_dir/details.txt"
export JPKI_BENCH_OUT=$out_dir JPKI_MODULE=$module
flags=()
[ -n "$short" ] && flags+=(--short)
if [ -n "${JPKI_TEST_CONTROL:-}" ]; then
    measure_profile
else
    [ ${#profiles[@]} -gt 0 ] || profiles=(conservative extended)
    for p in "${profiles[@]}"; do
        "$root/tests/harness/with-card.sh" --profile "$p" -- "$0" --inside "${flags[@]}"
    done
fi

python3 "$here/report.py" "$out_dir" "$expected" ${short:+--short} ${update:+--update "$root/BENCHMARKS.md"} \
    --latency "$LATENCY_APDU_MS" "$LATENCY_SIGN_MS"
