#!/usr/bin/env bash
# Desktop notification when the signature key signs (issue 15), on a private D-Bus session bus
# with a stand-in listener (dbus-monitor watching org.freedesktop.Notifications.Notify):
# - default policy: a signature-key signature is announced, naming the program (pkcs11-tool)
#   and the token; an authentication-key signature is not;
# - JPKI_PKCS11_NOTIFY=all announces both; =off announces none;
# - no bus (no DBUS_SESSION_BUS_ADDRESS, or an address with nothing behind it): the signature
#   succeeds and nothing is logged above debug level;
# - NSS (pdfsig), which forbids the module threads: the notification is sent on the caller's
#   thread, one per card signature, and a dead bus address costs no warning.
#
#   tests/harness/with-card.sh [--profile extended] -- bash tests/integration/notify.sh
set -uo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib/check.bash"
source "$here/lib/paths.bash"
need_module
command -v dbus-daemon >/dev/null && command -v dbus-monitor >/dev/null ||
    { echo "not ok - dbus-daemon and dbus-monitor needed (apt-get install dbus dbus-bin)"; exit 1; }
work=$(mktemp -d)
bus_pid=""
mon_pid=""
cleanup() {
    [ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null
    [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
unset JPKI_PKCS11_NOTIFY DBUS_SESSION_BUS_ADDRESS
AUTH_PIN=1234
SIGN_PIN=ABC123
echo "document" >"$work/data"
sign() { # sign auth|sign [ENV...]: one signature by pkcs11-tool, stderr → $work/err
    local key=$1; shift
    local slot=0 pin=$AUTH_PIN id=01
    [ "$key" = sign ] && { slot=1; pin=$SIGN_PIN; id=02; }
    env "$@" JPKI_PKCS11_LOG=info pkcs11-tool --module "$module" --slot "$slot" --login --pin "$pin" \
        --sign -m SHA256-RSA-PKCS --id "$id" -i "$work/data" -o "$work/sig" >/dev/null 2>"$work/err"
}
notifies() { grep -c 'member=Notify' "$work/mon.log"; }
settle() { sleep 0.5; }

# A private session bus and the stand-in listener.
dbus-daemon --session --address="unix:path=$work/bus" --nofork --print-address=1 >"$work/addr" 2>"$work/bus.err" &
bus_pid=$!
for _ in $(seq 1 100); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(head -n 1 "$work/addr")
check "private session bus up" test -n "$addr"
dbus-monitor --address "$addr" "type='method_call',interface='org.freedesktop.Notifications',member='Notify'" \
    >"$work/mon.log" 2>&1 &
mon_pid=$!
sleep 0.5

sign sign DBUS_SESSION_BUS_ADDRESS="$addr"
check "signature key signs with a bus" test $? -eq 0
settle
check "signature key: one Notify on the bus" test "$(notifies)" -eq 1
check "the notification names the program" grep -q 'pkcs11-tool (pid [0-9]*) made a signature' "$work/mon.log"
check "the notification names the token" grep -q 'on JPKI Sign' "$work/mon.log"
check "the notification's summary" grep -q 'My Number Card: signature key used' "$work/mon.log"

sign auth DBUS_SESSION_BUS_ADDRESS="$addr"
check "authentication key signs" test $? -eq 0
settle
check "authentication key, default policy: no notification" test "$(notifies)" -eq 1

sign auth DBUS_SESSION_BUS_ADDRESS="$addr" JPKI_PKCS11_NOTIFY=all
settle
check "JPKI_PKCS11_NOTIFY=all: the authentication key is announced" test "$(notifies)" -eq 2
check "... as a log-in" grep -q 'signed with your authentication key' "$work/mon.log"

sign sign DBUS_SESSION_BUS_ADDRESS="$addr" JPKI_PKCS11_NOTIFY=off
settle
check "JPKI_PKCS11_NOTIFY=off: signature key not announced" test "$(notifies)" -eq 2

# A host that forbids the module threads (NSS: pdfsig here, Firefox, Chromium): the notification
# is sent on the caller's thread after the signature, bounded by the socket timeouts.
if command -v pdfsig >/dev/null && command -v certutil >/dev/null; then
    sign_token=$(pkcs11-tool --module "$module" -L 2>/dev/null | sed -n 's/^ *token label *: *//p' |
        sed 's/ *$//' | grep '^JPKI Sign' | head -n 1)
    mkdir -p "$work/nssdb"
    certutil -N -d "sql:$work/nssdb" --empty-password &&
        modutil -dbdir "sql:$work/nssdb" -add jpki -libfile "$module" -force >/dev/null 2>&1
    python3 "$here/lib/make_pdf.py" "$work/in.pdf"
    card_signatures() {
        "$vc" ctl --control "$JPKI_TEST_CONTROL" stats | sed 's/^ok //' |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["signatures"])'
    }
    before=$(notifies)
    sigs_before=$(card_signatures)
    DBUS_SESSION_BUS_ADDRESS="$addr" JPKI_PKCS11_LOG=info pdfsig -nssdir "sql:$work/nssdb" \
        -nss-pwd "$SIGN_PIN" -add-signature -nick "$sign_token:JPKI Digital Signature" \
        "$work/in.pdf" "$work/out.pdf" >"$work/pdfsig.out" 2>&1
    check "NSS (no module threads): pdfsig signs with a bus" test $? -eq 0
    settle
    # poppler 22.12 signs twice per -add-signature (the first only sizes the signature): the
    # card made each, so each is announced.
    n=$(($(notifies) - before)) sigs=$(($(card_signatures) - sigs_before))
    check "NSS (no module threads): one Notify per card signature ($n for $sigs), sent on pdfsig's thread" \
        test "$sigs" -ge 1 -a "$n" -eq "$sigs"
    check "... naming pdfsig" grep -q 'pdfsig (pid [0-9]*) made a signature' "$work/mon.log"
    DBUS_SESSION_BUS_ADDRESS="unix:path=$work/nothing-here" JPKI_PKCS11_LOG=info pdfsig \
        -nssdir "sql:$work/nssdb" -nss-pwd "$SIGN_PIN" -add-signature \
        -nick "$sign_token:JPKI Digital Signature" "$work/in.pdf" "$work/out2.pdf" >"$work/pdfsig2.out" 2>&1
    check "NSS (no module threads), a bus address with nothing behind it: pdfsig signs" test $? -eq 0
    check "... nothing logged at warn or error" bash -c "! grep -q '\[WARN\]\|\[ERROR\]' '$work/pdfsig2.out'"
else
    not_ok "pdfsig and certutil needed (poppler-utils, libnss3-tools)"
fi

# No bus.
sign sign
check "no session bus: the signature succeeds" test $? -eq 0
check "no session bus: nothing logged at warn or error" bash -c "! grep -q '\[WARN\]\|\[ERROR\]' '$work/err'"
sign sign DBUS_SESSION_BUS_ADDRESS="unix:path=$work/nothing-here"
check "a bus address with nothing behind it: the signature succeeds" test $? -eq 0
check "... nothing logged at warn or error" bash -c "! grep -q '\[WARN\]\|\[ERROR\]' '$work/err'"

check_done
