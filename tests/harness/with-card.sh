#!/usr/bin/env bash
# Runs a command against the real PC/SC stack: a private pcscd with the vpcd driver and one or
# more virtual My Number Cards of this project, then stops exactly the processes it started.
#
#   tests/harness/with-card.sh [--profile conservative|extended|phone] [--cards N]
#                              [--latency APDU_MS SIGN_MS] [--workdir DIR]
#                              [--extended-apdu card|accept|refuse|sw:XXXX|drop]
#                              [--cert-days N | --not-after YYYY-MM-DD] -- COMMAND [ARGS...]
#
# --extended-apdu: how the card and reader answer an extended-length READ BINARY (default
#   `card`: the profile decides; see tests/virtual-card/README.md). Default from the
#   environment variable JPKI_TEST_EXTENDED_APDU.
# --cert-days N: the cards' end-entity certificates expire in N days (negative: expired N days
#   ago); --not-after DATE: they expire on DATE. Defaults from JPKI_TEST_CERT_DAYS /
#   JPKI_TEST_NOT_AFTER; without either the fixed 2025-10-27 → 2030-10-26 certificates.
#
# Why a private namespace: pcscd's client socket is a fixed path (/run/pcscd/pcscd.comm) and the
# vpcd driver listens on all addresses, so anyone on the network could "play" the card. We run
# pcscd, the cards and COMMAND in their own mount + network namespace (unshare -m -n): a tmpfs
# over /run/pcscd gives a private socket, and the namespace has only a loopback interface.
# As root this needs nothing else; as a normal user it needs unprivileged user namespaces
# (unshare -r), which Debian 12 allows by default.
#
# COMMAND sees (environment):
#   JPKI_PCSC_TEST=1               integration tests run (and fail if no card is found)
#   JPKI_TEST_WORKDIR              the harness's directory (logs, state files, sockets)
#   JPKI_TEST_PROFILE              conservative | extended | phone
#   JPKI_TEST_EXTENDED_APDU        the extended-APDU mode the cards started with
#   JPKI_TEST_CERT_DAYS / JPKI_TEST_NOT_AFTER   as given (empty when not given)
#   JPKI_TEST_CARDS                number of cards/readers
#   JPKI_TEST_CONTROL[_i]          control socket of card i (card 0 without suffix)
#   JPKI_TEST_APDU_LOG[_i]         APDU log of card i
#   JPKI_TEST_STATE[_i]            state file of card i
#   JPKI_TEST_CARD_BIN             the virtual card binary (for `ctl` and `export`)
#   JPKI_TEST_PCSCD_PID            pcscd's PID (tests that stop/restart pcscd)
#   JPKI_TEST_RESTART_PCSCD        a script that restarts pcscd with the same configuration
#   XDG_CACHE_HOME                 a private, initially empty cache directory (the module's
#                                  certificate cache lives there, never in the user's)
#   XDG_STATE_HOME                 $JPKI_TEST_WORKDIR/state (where the module's usage history goes)
#
# At the end, the run fails if any card received a VERIFY or CHANGE REFERENCE DATA with a PIN
# of impossible format (the module must refuse those before the card), unless the environment
# has JPKI_HARNESS_ALLOW_MALFORMED_PIN=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

profile=conservative
cards=1
apdu_latency=0
sign_latency=0
workdir=""
extended_apdu=${JPKI_TEST_EXTENDED_APDU:-card}
cert_days=${JPKI_TEST_CERT_DAYS:-}
not_after=${JPKI_TEST_NOT_AFTER:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --extended-apdu) extended_apdu=$2; shift 2 ;;
        --cert-days) cert_days=$2; not_after=""; shift 2 ;;
        --not-after) not_after=$2; cert_days=""; shift 2 ;;
        --cards) cards=$2; shift 2 ;;
        --latency) apdu_latency=$2; sign_latency=$3; shift 3 ;;
        --workdir) workdir=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "with-card.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "with-card.sh: no command given" >&2; exit 2; }
# One vpcd driver instance gives two readers; a second instance's second reader never saw its
# card in our trials, so the harness offers one or two cards.
case "$cards" in 1|2) ;; *) echo "with-card.sh: --cards must be 1 or 2" >&2; exit 2 ;; esac
case "$profile" in conservative|extended|phone) ;;
    *) echo "with-card.sh: --profile must be conservative, extended or phone" >&2; exit 2 ;; esac
case "$extended_apdu" in card|accept|refuse|drop|sw:[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]) ;;
    *) echo "with-card.sh: --extended-apdu must be card, accept, refuse, sw:XXXX or drop" >&2; exit 2 ;; esac
if [ -n "$cert_days" ] && [ -n "$not_after" ]; then
    echo "with-card.sh: give --cert-days or --not-after, not both" >&2; exit 2
fi
case "$cert_days" in ''|-[0-9]*|[0-9]*) ;; *) echo "with-card.sh: --cert-days needs a number" >&2; exit 2 ;; esac

# Step 1: enter a private mount + network namespace (re-executing this script inside it).
if [ -z "${JPKI_HARNESS_INSIDE:-}" ]; then
    export JPKI_HARNESS_INSIDE=1
    args=(--profile "$profile" --cards "$cards" --latency "$apdu_latency" "$sign_latency"
          --extended-apdu "$extended_apdu")
    [ -n "$workdir" ] && args+=(--workdir "$workdir")
    [ -n "$cert_days" ] && args+=(--cert-days "$cert_days")
    [ -n "$not_after" ] && args+=(--not-after "$not_after")
    # The inner run takes these from its arguments only.
    unset JPKI_TEST_CERT_DAYS JPKI_TEST_NOT_AFTER
    if [ "$(id -u)" = 0 ]; then
        exec unshare --mount --net --propagation private "$0" "${args[@]}" -- "$@"
    else
        exec unshare --user --map-root-user --mount --net --propagation private "$0" "${args[@]}" -- "$@"
    fi
fi

card_bin=${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}
[ -x "$card_bin" ] || { echo "with-card.sh: $card_bin not built (cargo build -p jpki-virtual-card)" >&2; exit 2; }
command -v pcscd >/dev/null || PATH=$PATH:/usr/sbin
command -v pcscd >/dev/null || { echo "with-card.sh: pcscd not installed (apt-get install pcscd vsmartcard-vpcd)" >&2; exit 2; }
vpcd_lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
[ -e "$vpcd_lib" ] || { echo "with-card.sh: vpcd driver missing (apt-get install vsmartcard-vpcd)" >&2; exit 2; }

ip link set lo up 2>/dev/null || true
# Private pcscd socket directory.
if [ -d /run/pcscd ]; then
    mount -t tmpfs -o mode=0755 tmpfs /run/pcscd
else
    mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/pcscd
fi

if [ -z "$workdir" ]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/jpki-harness.XXXXXX")
fi
mkdir -p "$workdir/reader.conf.d"
base_port=35963
: > "$workdir/reader.conf.d/vpcd"
# One vpcd driver instance serves two readers ("Virtual PCD 00 00" and "... 00 01"), listening
# for a card on <port> and <port>+1 (DEVICENAME "/dev/null:<port>"). Card i connects to
# base_port + i; with one card the second reader stays empty, as a real spare reader would.
cat > "$workdir/reader.conf.d/vpcd" <<CONF
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:$base_port
LIBPATH      $vpcd_lib
CHANNELID    $base_port
CONF

pids=()
cleanup() {
    local rc=$?
    # pcscd may have been restarted by a test (restart-pcscd.sh): stop the current one too.
    [ -f "$workdir/pcscd.pid" ] && pids+=("$(cat "$workdir/pcscd.pid")")
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    exit $rc
}
trap cleanup EXIT INT TERM

start_pcscd() {
    pcscd --foreground --config "$workdir/reader.conf.d" --info >>"$workdir/pcscd.log" 2>&1 &
    pcscd_pid=$!
    pids+=("$pcscd_pid")
    echo "$pcscd_pid" > "$workdir/pcscd.pid"
    for _ in $(seq 1 100); do
        [ -S /run/pcscd/pcscd.comm ] && return 0
        sleep 0.05
    done
    echo "with-card.sh: pcscd did not start; see $workdir/pcscd.log" >&2
    return 1
}
start_pcscd

# A script tests can call to stop and restart pcscd (fault tests).
cat > "$workdir/restart-pcscd.sh" <<SH
#!/usr/bin/env bash
old=\$(cat "$workdir/pcscd.pid")
kill "\$old" 2>/dev/null; while kill -0 "\$old" 2>/dev/null; do sleep 0.05; done
rm -f /run/pcscd/pcscd.comm
pcscd --foreground --config "$workdir/reader.conf.d" --info >>"$workdir/pcscd.log" 2>&1 &
echo \$! > "$workdir/pcscd.pid"
for _ in \$(seq 1 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done
SH
chmod +x "$workdir/restart-pcscd.sh"

cert_args=()
[ -n "$cert_days" ] && cert_args=(--cert-days "$cert_days")
[ -n "$not_after" ] && cert_args=(--not-after "$not_after")
for i in $(seq 0 $((cards - 1))); do
    suffix=""
    [ "$i" -gt 0 ] && suffix="_$i"
    "$card_bin" run --state "$workdir/card$i.state" --seed $((1 + i)) --profile "$profile" \
        --host 127.0.0.1 --port $((base_port + i)) --control "$workdir/card$i.ctl" \
        --apdu-log "$workdir/card$i.apdu" --apdu-latency-ms "$apdu_latency" \
        --sign-latency-ms "$sign_latency" --extended-apdu "$extended_apdu" \
        ${cert_args[@]+"${cert_args[@]}"} >>"$workdir/card$i.log" 2>&1 &
    pids+=("$!")
    export "JPKI_TEST_CONTROL$suffix=$workdir/card$i.ctl"
    export "JPKI_TEST_APDU_LOG$suffix=$workdir/card$i.apdu"
    export "JPKI_TEST_STATE$suffix=$workdir/card$i.state"
done

# Wait until pcscd reports every card present (opensc-tool lists "Yes" in the Card column).
ok=""
for _ in $(seq 1 200); do
    present=$(opensc-tool --list-readers 2>/dev/null | grep -c '^[0-9]\+ \+Yes' || true)
    if [ "$present" -ge "$cards" ]; then ok=1; break; fi
    sleep 0.05
done
[ -n "$ok" ] || { echo "with-card.sh: cards did not come up; see $workdir" >&2; opensc-tool --list-readers >&2 || true; exit 1; }

# The module's certificate cache (XDG cache directory) is private to the run: tests never
# read or write the user's own cache, and every run starts cold.
mkdir -p "$workdir/xdg-cache"
export XDG_CACHE_HOME="$workdir/xdg-cache"
export JPKI_PCSC_TEST=1 JPKI_TEST_WORKDIR="$workdir" JPKI_TEST_PROFILE="$profile" \
    JPKI_TEST_CARDS="$cards" JPKI_TEST_CARD_BIN="$card_bin" JPKI_TEST_PCSCD_PID="$pcscd_pid" \
    JPKI_TEST_RESTART_PCSCD="$workdir/restart-pcscd.sh" JPKI_TEST_EXTENDED_APDU="$extended_apdu" \
    JPKI_TEST_CERT_DAYS="$cert_days" JPKI_TEST_NOT_AFTER="$not_after"
# The module's usage history goes to the harness's directory, never to the developer's own
# ~/.local/state.
export XDG_STATE_HOME="$workdir/state"
set +e
"$@"
rc=$?
set -e

# PIN safety, checked on every run: no VERIFY (or CHANGE REFERENCE DATA) with a PIN of a format
# the card can never hold may have reached a card. The module must refuse such input before the
# card (it would cost a try); the card counts them (stats) and logs each one (its log survives
# a `reset-stats`). JPKI_HARNESS_ALLOW_MALFORMED_PIN=1 reports without failing, for runs that
# drive another middleware on purpose.
pins_ok=1
for i in $(seq 0 $((cards - 1))); do
    stats=$("$card_bin" ctl --control "$workdir/card$i.ctl" stats 2>/dev/null || true)
    verify=$(printf '%s' "$stats" | sed -n 's/.*"malformed_verify_count":\([0-9]*\).*/\1/p')
    change=$(printf '%s' "$stats" | sed -n 's/.*"malformed_change_count":\([0-9]*\).*/\1/p')
    logged=$(grep -c "malformed PIN reached the card" "$workdir/card$i.log" 2>/dev/null || true)
    if [ -z "$verify" ]; then
        echo "with-card.sh: card $i: stats unreadable, checking its log only" >&2
        verify=0 change=0
    fi
    if [ "$verify" != 0 ] || [ "${change:-0}" != 0 ] || [ "${logged:-0}" != 0 ]; then
        echo "with-card.sh: card $i received malformed PINs: VERIFY $verify, CHANGE REFERENCE DATA ${change:-0} (log: ${logged:-0})" >&2
        pins_ok=""
    fi
done
if [ -z "$pins_ok" ]; then
    if [ "${JPKI_HARNESS_ALLOW_MALFORMED_PIN:-}" = 1 ]; then
        echo "with-card.sh: JPKI_HARNESS_ALLOW_MALFORMED_PIN=1: not failing the run" >&2
    elif [ "$rc" = 0 ]; then
        rc=1
    fi
fi
exit $rc
