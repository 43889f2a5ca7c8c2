#!/usr/bin/env bash
# Every subcommand of the `jpki` command against the virtual card through pcscd, on the profile
# the harness runs: status (no try spent), doctor (pcscd unreachable, no card, registrations),
# certs export, sign/verify (interoperable with `openssl cms -verify`), pin change, info (its
# own PIN; no echo on a terminal), cache (show, clear), --json, exit codes, progress only on a
# terminal.
# Run inside tests/harness/with-card.sh. The binary: $JPKI_CLI, else the newer of
# target/release/jpki and target/debug/jpki (build it first: cargo build).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/paths.bash"
profile=${JPKI_TEST_PROFILE:-conservative}
need_cli
# The smartphone token (docs/phone-token.md) has no card-info application, and shows its
# authentication certificate only after the authentication PIN: those checks change there.
phone=0; [ "$profile" = phone ] && phone=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp/home"   # doctor looks at ~/.pki and ~/.mozilla: start from nothing
mkdir -p "$HOME"

source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
ctl() { "$vc" ctl --control "$JPKI_TEST_CONTROL" "$@" >/dev/null; }
stat_field() {
    "$vc" ctl --control "$JPKI_TEST_CONTROL" stats | sed -e 's/^ok //' |
        python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"
}
personal() { python3 -c "import json,sys; print(json.load(open('$JPKI_TEST_STATE'))['personal']['$1'])"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
cms_verify() { # cms_verify CONTENT SIG CA: openssl's verdict, quietly
    openssl cms -verify -binary -content "$1" -inform DER -in "$2" -CAfile "$3" -out /dev/null 2>/dev/null
}
# run NAME ARGS...: runs jpki, stdout → $tmp/NAME.out, stderr → $tmp/NAME.err, rc → $rc
run() { local name=$1; shift; "$cli" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; rc=$?; }
# run_pins NAME "PIN LINES" ARGS...: the same with --pin-fd 3
run_pins() {
    local name=$1 pins=$2; shift 2
    "$cli" --pin-fd 3 "$@" 3< <(printf '%s' "$pins") >"$tmp/$name.out" 2>"$tmp/$name.err"; rc=$?
}

"$vc" export --state "$JPKI_TEST_STATE" --out "$tmp/card" >/dev/null
my_number=$(personal my_number)
name=$(personal name)

# --- usage ----------------------------------------------------------------------------------
run help --help
check "--help exits 0 and documents exit codes" test "$rc" -eq 0 -a -n "$(grep 'Exit codes' "$tmp/help.out")"
run bad frobnicate
check "unknown command exits 2" test "$rc" -eq 2

# --- status -----------------------------------------------------------------------------------
verifies_before=$(stat_field verify_count)
run status status
check "status exits 0" test "$rc" -eq 0
if [ "$phone" = 1 ]; then
    check "status: smartphone token found" grep -q "My Number Card: yes (JPKIAPGPSETOKEN)" "$tmp/status.out"
    check "status: tries left, no card-info application on the phone" \
        grep -q "Tries left: authentication PIN 3/3, signature password 5/5, card-info PIN unknown" "$tmp/status.out"
    check "status: auth certificate needs the PIN on the phone" \
        grep -q "Authentication certificate: readable only after the authentication PIN" "$tmp/status.out"
else
    check "status: My Number Card found" grep -q "My Number Card: yes (JPKIAPICCTOKEN2)" "$tmp/status.out"
    check "status: tries left on all three PINs" \
        grep -q "Tries left: authentication PIN 3/3, signature password 5/5, card-info PIN 3/3" "$tmp/status.out"
    check "status: auth certificate subject and expiry" grep -Eq "valid [0-9-]+ to [0-9-]+ \([0-9]+ days left\)" "$tmp/status.out"
fi
check "status: empty reader listed" grep -q "Card: none" "$tmp/status.out"
check "status: never the signature certificate's personal data" \
    bash -c '! grep -q "$1" "$2" && ! grep -q "$3" "$2"' _ "$name" "$tmp/status.out" "$my_number"
check "status: no progress text when stderr is not a terminal" test ! -s "$tmp/status.err"
run status_json --json status
pss=$(jq_py '["readers"][0]["card"]["rsa_pss"]' <"$tmp/status_json.out")
tries=$(jq_py '["readers"][0]["card"]["tries_left"]["kenhojo"]' <"$tmp/status_json.out")
apps=$(jq_py '["readers"][0]["card"]["applications"]["kenhojo"]' <"$tmp/status_json.out")
if [ "$phone" = 1 ]; then
    check "status --json: no kenhojo application on the phone" test "$tries" = None -a "$apps" = False
else
    check "status --json: kenhojo tries 3, kenhojo application answers" test "$tries" = 3 -a "$apps" = True
fi
if [ "$profile" = extended ]; then
    check "status: RSA-PSS supported (extended card)" test "$pss" = True
else
    check "status: RSA-PSS not supported (conservative card)" test "$pss" = False
fi
check "status spent no PIN try (no VERIFY with data)" test "$(stat_field verify_count)" -eq "$verifies_before"

# --- doctor -----------------------------------------------------------------------------------
run doctor doctor --module "$module"
check "doctor: no problem with a good card (exit 0)" test "$rc" -eq 0
check "doctor: pcscd and card seen" grep -q "My Number Card in" "$tmp/doctor.out"
check "doctor: missing NSS database explained with a fix" grep -q "fix: mkdir -p $HOME/.pki/nssdb" "$tmp/doctor.out"
mkdir -p "$HOME/.pki/nssdb" && certutil -N -d "sql:$HOME/.pki/nssdb" --empty-password
run doctor2 --json doctor --module "$module"
check "doctor: NSS database without the module → modutil fix" \
    python3 -c "import json,sys; d=json.load(open('$tmp/doctor2.out')); f=[x for x in d['findings'] if x['check']=='nss'][0]; sys.exit(not (f['level']=='warning' and 'modutil' in f['fix']))"
modutil -dbdir "sql:$HOME/.pki/nssdb" -add "JPKI My Number Card" -libfile "$module" -force >/dev/null 2>&1
mkdir -p "$HOME/.mozilla/firefox/abcd.default-esr"
printf 'library=\nname=NSS Internal PKCS #11 Module\n' >"$HOME/.mozilla/firefox/abcd.default-esr/pkcs11.txt"
run doctor3 doctor --module "$module"
check "doctor: NSS registration recognised" grep -q "registered in the NSS database" "$tmp/doctor3.out"
check "doctor: Firefox profile without the module → fix" grep -q "Firefox profile abcd.default-esr: module not loaded" "$tmp/doctor3.out"
printf 'library=%s\nname=JPKI\n' "$module" >>"$HOME/.mozilla/firefox/abcd.default-esr/pkcs11.txt"
run doctor4 doctor --module "$module"
check "doctor: Firefox registration recognised" grep -q "Firefox profile abcd.default-esr: registered" "$tmp/doctor4.out"
ctl remove
sleep 0.5
run doctor5 doctor --module "$module"
check "doctor: reader without a card is a problem (exit 8)" test "$rc" -eq 8
check "doctor: says to insert the card" grep -q "no card in any reader" "$tmp/doctor5.out"
run status_nocard status
check "status without a card exits 3" test "$rc" -eq 3
ctl insert
sleep 0.5
PCSCLITE_CSOCK_NAME="$tmp/nothing-here" "$cli" doctor --module "$module" >"$tmp/doctor6.out" 2>&1
rc=$?
check "doctor: pcscd unreachable is a problem (exit 8) with the fix" \
    test "$rc" -eq 8 -a -n "$(grep 'pcscd.socket' "$tmp/doctor6.out")"
PCSCLITE_CSOCK_NAME="$tmp/nothing-here" "$cli" status >/dev/null 2>&1
check "status with pcscd unreachable exits 3" test "$?" -eq 3

# --- certs export -----------------------------------------------------------------------------
# On the phone the authentication certificate costs the authentication PIN (asked for).
auth_pin_line=""; [ "$phone" = 1 ] && auth_pin_line=$'1234\n'
run_pins export "$auth_pin_line" certs export --dir "$tmp/exp"
check "certs export exits 0" test "$rc" -eq 0
check "certs export: auth certificate equals the card's" cmp -s "$tmp/exp/auth_cert.der" "$tmp/card/auth_cert.der"
check "certs export: CA certificates written (PEM parses)" openssl x509 -in "$tmp/exp/sign_ca_cert.pem" -noout
check "certs export: no signature certificate without --sign" test ! -e "$tmp/exp/sign_cert.der"
run_pins export2 $'ABC123\n'"$auth_pin_line" certs export --dir "$tmp/exp2" --sign
check "certs export --sign: signature certificate equals the card's" cmp -s "$tmp/exp2/sign_cert.der" "$tmp/card/sign_cert.der"
check "certs export --sign: owner-only file" test "$(stat -c %a "$tmp/exp2/sign_cert.der")" = 600
# A wrong password (one try spent; the right one below gives it back) ends the export with
# nothing written: a half export would look finished.
run_pins export3 $'XYZ999\n'"$auth_pin_line" certs export --dir "$tmp/exp3" --sign
check "certs export --sign, wrong password: fails and writes no file" \
    test "$rc" -ne 0 -a -d "$tmp/exp3" -a -z "$(ls -A "$tmp/exp3")"

# --- sign / verify ----------------------------------------------------------------------------
printf 'a document to sign\n' >"$tmp/doc.txt"
run_pins sign $'abc123\n' sign "$tmp/doc.txt"
check "sign (signature key) exits 0 and writes doc.txt.p7s" test "$rc" -eq 0 -a -s "$tmp/doc.txt.p7s"
check "openssl cms -verify accepts it (sign CA)" \
    cms_verify "$tmp/doc.txt" "$tmp/doc.txt.p7s" "$tmp/card/sign_ca_cert.pem"
run verify verify --ca "$tmp/card/sign_ca_cert.pem" "$tmp/doc.txt" "$tmp/doc.txt.p7s"
check "jpki verify --ca accepts it" test "$rc" -eq 0
run_pins sign_auth $'1234\n' sign --key auth --out "$tmp/doc.auth.p7s" "$tmp/doc.txt"
check "openssl cms -verify accepts an auth-key signature (auth CA)" \
    cms_verify "$tmp/doc.txt" "$tmp/doc.auth.p7s" "$tmp/card/auth_ca_cert.pem"
printf 'a document to sign!\n' >"$tmp/doc2.txt"
check "openssl cms -verify refuses a changed file" \
    bash -c '! openssl cms -verify -binary -content "$1" -inform DER -in "$2" -CAfile "$3" -out /dev/null 2>/dev/null' \
    _ "$tmp/doc2.txt" "$tmp/doc.txt.p7s" "$tmp/card/sign_ca_cert.pem"
run verify_bad verify "$tmp/doc2.txt" "$tmp/doc.txt.p7s"
check "jpki verify: changed file → exit 7" test "$rc" -eq 7
run verify_wrong_ca verify --ca "$tmp/card/auth_ca_cert.pem" "$tmp/doc.txt" "$tmp/doc.txt.p7s"
check "jpki verify: wrong CA → exit 7" test "$rc" -eq 7
run_pins sign_wrong $'WRONG9\n' sign --out "$tmp/x.p7s" "$tmp/doc.txt"
check "sign with a wrong password → exit 5, tries left told" \
    test "$rc" -eq 5 -a -n "$(grep '4 tries left' "$tmp/sign_wrong.err")"
apdus=$(stat_field apdus)
run_pins sign_malformed $'AB-12\n' sign --out "$tmp/x.p7s" "$tmp/doc.txt"
check "sign with a malformed password → exit 2, nothing sent" \
    test "$rc" -eq 2 -a "$(stat_field apdus)" -eq "$apdus"
run_pins sign_json $'ABC123\n' --json sign --out "$tmp/y.p7s" "$tmp/doc.txt"
check "sign --json: sha256 of the file" \
    test "$(jq_py '["sha256"]' <"$tmp/sign_json.out")" = "$(sha256sum "$tmp/doc.txt" | cut -d' ' -f1)"

# --- pin change -------------------------------------------------------------------------------
apdus=$(stat_field apdus)
run_pins pin_bad $'1234\n12345\n' pin change --auth
check "pin change: malformed new PIN → exit 2, nothing sent" \
    test "$rc" -eq 2 -a "$(stat_field apdus)" -eq "$apdus"
run_pins pin_wrong $'9999\n4321\n' pin change --auth
check "pin change: wrong current PIN → exit 5 (2 tries left)" \
    test "$rc" -eq 5 -a -n "$(grep '2 tries left' "$tmp/pin_wrong.err")"
run_pins pin_ok $'1234\n4321\n' pin change --auth
check "pin change --auth succeeds" test "$rc" -eq 0
run_pins sign_new $'4321\n' sign --key auth --out "$tmp/z.p7s" "$tmp/doc.txt"
check "the new authentication PIN works" test "$rc" -eq 0
run_pins pin_sign $'ABC123\nNEWPASS9\n' pin change --sign
check "pin change --sign succeeds" test "$rc" -eq 0
if [ "$phone" = 1 ]; then
    # The terminal checks below run `info` too.
    echo "# SKIP: pin change --kenhojo, info (also on a terminal): the phone token has no card-info application"
    check "no malformed PIN ever reached the card" test "$(stat_field malformed_verify_count)" -eq 0 -a "$(stat_field malformed_change_count)" -eq 0
    check_done
fi
run_pins pin_kenhojo $'5678\n2468\n' pin change --kenhojo
check "pin change --kenhojo succeeds" test "$rc" -eq 0

# --- info -------------------------------------------------------------------------------------
run_pins info_wrong $'5678\n' info
check "info with the old card-info PIN → exit 5" test "$rc" -eq 5
run_pins info $'2468\n' info
check "info prints My Number and name" \
    test "$rc" -eq 0 -a -n "$(grep "$my_number" "$tmp/info.out")" -a -n "$(grep -F "$name" "$tmp/info.out")"
run_pins info_json $'2468\n' --json info
check "info --json" test "$(jq_py '["my_number"]' <"$tmp/info_json.out")" = "$my_number"
apdus=$(stat_field apdus)
run_pins info_bad $'24a8\n' info
check "info with a malformed PIN → exit 2, nothing sent" test "$rc" -eq 2 -a "$(stat_field apdus)" -eq "$apdus"
# On a terminal: the prompt is shown, the PIN is not echoed, the spinner appears on stderr.
python3 - "$cli" >"$tmp/pty.out" 2>&1 <<'EOF'
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "info"])
out = b""
deadline = time.time() + 20
sent = False
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if not sent and b"PIN" in out:
        os.write(fd, b"2468\n")
        sent = True
_, status = os.waitpid(pid, 0)
text = out.decode("utf-8", "replace")
print(text)
print("EXIT", os.waitstatus_to_exitcode(status))
print("ECHOED" if "2468" in text else "NOT-ECHOED")
EOF
check "info on a terminal: prompt, no echo of the PIN, data shown" \
    test -n "$(grep 'EXIT 0' "$tmp/pty.out")" -a -n "$(grep NOT-ECHOED "$tmp/pty.out")" -a -n "$(grep "$my_number" "$tmp/pty.out")"
check "progress indication on a terminal" grep -q "reading the card-info application" "$tmp/pty.out"

# Ctrl-C while the PIN prompt waits: the program ends by the signal, and the terminal has its
# echo back (the prompt turned it off).
python3 - "$cli" >"$tmp/pty-int.out" 2>&1 <<'EOF'
import os, pty, signal, sys, termios, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "info"])
out = b""
deadline = time.time() + 20
while b"PIN" not in out and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        out += os.read(fd, 4096)
off = not termios.tcgetattr(fd)[3] & termios.ECHO
os.kill(pid, signal.SIGINT)
_, status = os.waitpid(pid, 0)
on = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
print("ECHO-OFF-AT-PROMPT" if off else "echo on at the prompt")
print("ECHO-RESTORED" if on else "echo still off")
print("SIGINT" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT else f"status {status}")
EOF
check "Ctrl-C at the PIN prompt: ends the program, the terminal echoes again" \
    test -n "$(grep ECHO-OFF-AT-PROMPT "$tmp/pty-int.out")" -a -n "$(grep ECHO-RESTORED "$tmp/pty-int.out")" -a -n "$(grep -x SIGINT "$tmp/pty-int.out")"

# --- cache ------------------------------------------------------------------------------------
# The module's certificate cache, filled by one pkcs11-tool process in a cache home of our own.
cache_home="$tmp/xdg-cache"
mkdir -p -m 700 "$cache_home" "$cache_home/jpki-pkcs11"
echo "the user's own file" >"$cache_home/jpki-pkcs11/notes.txt"
XDG_CACHE_HOME="$cache_home" pkcs11-tool --module "$module" --slot-index 0 -O >/dev/null 2>&1
XDG_CACHE_HOME="$cache_home" run cache cache
check "cache: exits 0 and names its directory" \
    test "$rc" -eq 0 -a -n "$(grep -F "certificate cache: $cache_home/jpki-pkcs11" "$tmp/cache.out")"
check "cache: the card's file holds the authentication certificate and its CA" \
    grep -Eq "card-[0-9a-f]+ +[0-9]+ bytes +card: authentication, authentication CA" "$tmp/cache.out"
XDG_CACHE_HOME="$cache_home" run cache_json --json cache
check "cache --json: one card file, enabled, never the signature certificate" \
    test "$(jq_py '["enabled"], [f["kind"] for f in d["files"]].count("card"), any("signature" == c for f in d["files"] for c in f.get("certificates", []))' <"$tmp/cache_json.out")" = "(True, 1, False)"
JPKI_PKCS11_CACHE=off XDG_CACHE_HOME="$cache_home" run cache_off cache
check "cache: says when JPKI_PKCS11_CACHE=off switches it off" grep -q "switched off here" "$tmp/cache_off.out"
XDG_CACHE_HOME="$cache_home" run cache_clear cache --clear
check "cache --clear: exits 0 and removes the cache's files" \
    test "$rc" -eq 0 -a -z "$(ls "$cache_home/jpki-pkcs11" | grep -E '^(card|reader)-')"
check "cache --clear: leaves other files alone" test -e "$cache_home/jpki-pkcs11/notes.txt"
XDG_CACHE_HOME="$cache_home" run cache_empty cache
check "cache: empty after --clear" grep -q "^  empty" "$tmp/cache_empty.out"

check "no malformed PIN ever reached the card" test "$(stat_field malformed_verify_count)" -eq 0 -a "$(stat_field malformed_change_count)" -eq 0

if [ "$check_failed" -ne 0 ]; then
    for f in "$tmp"/*.err; do echo "--- $f"; tail -5 "$f"; done
fi
check_done
