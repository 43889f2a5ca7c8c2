#!/usr/bin/env bash
# Chromium logs in to a TLS server with the card's authentication certificate.
#
# Headless Chromium has no way to be given a PIN, so this runs a real Chromium window on a
# private Xvfb display (no TCP, its own X cookie) and types the PIN into Chromium's own
# "Unlock Security Device" dialog with xdotool, once. The module is registered the way the
# README tells users to: modutil into ~/.pki/nssdb (HOME is a scratch dir here). The certificate
# is chosen by the policy AutoSelectCertificateForUrls in /etc/chromium/policies/managed/ (a
# private copy of /etc/chromium, bind-mounted in the harness's own mount namespace). The page is
# read through the DevTools protocol and checked against s_server's log.
#
# TLS 1.2 must log in and show our certificate. TLS 1.3: with a module that advertises
# CKM_RSA_PKCS_PSS on the auth token it must work; without it Chromium must stop with
# ERR_SSL_CLIENT_AUTH_NO_COMMON_ALGORITHMS (docs/client-behaviour.md, "TLS 1.3 needs RSA-PSS").
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/browser-common.sh"

for tool in chromium Xvfb xdotool xauth; do
    command -v "$tool" >/dev/null || { echo "$tool not installed" >&2; exit 2; }
done
python3 -c 'import websocket' 2>/dev/null || { echo "pip install websocket-client" >&2; exit 2; }

PORT12=18422
PORT13=18423
CDP_PORT=29222
URL12=https://127.0.0.1:$PORT12/
URL13=https://127.0.0.1:$PORT13/

# --- Registration: the README's commands, with HOME a scratch dir. ---
export HOME=$scratch/home
mkdir -p "$HOME/.pki/nssdb"
certutil -N -d "sql:$HOME/.pki/nssdb" --empty-password
modutil -dbdir "sql:$HOME/.pki/nssdb" -add "My Number Card (JPKI)" -libfile "$BROWSER_MODULE" -force \
    >"$scratch/modutil.log" 2>&1
check "discover: modutil registered the module in ~/.pki/nssdb and lists its tokens" \
    bash -c 'modutil -dbdir "sql:$HOME/.pki/nssdb" -list "My Number Card (JPKI)" 2>&1 | tee -a "$1" | grep -q "Token Name: .*"' _ "$scratch/modutil.log"
certutil -A -d "sql:$HOME/.pki/nssdb" -n "browser test CA" -t "C,," -i "$scratch/pki/ca.pem"
AUTH_TOKEN_LABEL=$(pkcs11-tool --module "$JPKI_MODULE" -L 2>/dev/null |
    sed -n 's/^ *token label *: *//p' | head -n 1 | sed 's/ *$//')

# --- Policy: pick the card certificate for our two servers without asking. ---
etc_copy=$scratch/etc-chromium
mkdir -p "$etc_copy"
cp -a /etc/chromium/. "$etc_copy/" 2>/dev/null || true
mount --bind "$etc_copy" /etc/chromium || { not_ok "private /etc/chromium"; finish; }
mkdir -p /etc/chromium/policies/managed
cat >/etc/chromium/policies/managed/jpki-client-auth.json <<EOF
{
  "AutoSelectCertificateForUrls": [
    "{\"pattern\":\"https://127.0.0.1:$PORT12\",\"filter\":{}}",
    "{\"pattern\":\"https://127.0.0.1:$PORT13\",\"filter\":{}}"
  ]
}
EOF

start_s_server tls1_2 "$PORT12"
start_s_server tls1_3 "$PORT13"

# --- Private X display: no TCP, a fresh MIT cookie. ---
cookie=$(mcookie)
xauth -q -f "$scratch/xserver.auth" add :0 MIT-MAGIC-COOKIE-1 "$cookie" 2>/dev/null
start_bg "$scratch/xvfb.log" bash -c 'exec Xvfb -displayfd 3 -nolisten tcp -auth "$1" \
    -screen 0 1280x800x24 3>"$2"' _ "$scratch/xserver.auth" "$scratch/display"
wait_for 15 test -s "$scratch/display" || { not_ok "Xvfb starts"; cat "$scratch/xvfb.log" >&2; finish; }
export DISPLAY=:$(head -n 1 "$scratch/display")
export XAUTHORITY=$scratch/xclient.auth
xauth -q -f "$XAUTHORITY" add "$DISPLAY" MIT-MAGIC-COOKIE-1 "$cookie" 2>/dev/null
check "private X display $DISPLAY answers with our cookie" bash -c "xdotool getdisplaygeometry >/dev/null"

stats_before=$(card_stats)
started=$(date +%s.%N)
start_bg "$scratch/chromium.log" timeout 90 chromium --no-sandbox --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$scratch/chromium-profile" --remote-debugging-port="$CDP_PORT" "$URL12"

# --- The user: types the PIN into Chromium's "Unlock Security Device" dialog, once. ---
# The dialog reads "Please unlock JPKI Auth ... to authenticate to 127.0.0.1 with your
# certificate" (JPKI_BROWSER_SCREENSHOT=1 keeps dialog.png in the scratch dir). It must be the
# only dialog: the signature token declares CKP_PUBLIC_CERTIFICATES_TOKEN, so NSS does not ask
# to unlock it just to list certificates (cancelling that prompt made Chromium abort).
since() { python3 -c "import time;print(round(time.time()-$started,1))"; }
# windows_named REGEX: the ids of the windows whose name matches, on a clean answer only.
# `xdotool search` walks every window and dies with an X BadWindow error when one disappears
# during the walk (Chromium opens and closes windows while it starts), which looks exactly like
# "no window": so an answer that came with an X error is asked again, and --sync is not used.
windows_named() {
    local out err
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        err=$scratch/xdotool.err
        out=$(xdotool search --name "$1" 2>"$err")
        if ! grep -q 'X Error\|BadWindow' "$err"; then
            printf '%s' "$out"
            return 0
        fi
        cat "$err" >>"$scratch/xdotool.log"
        sleep 0.1
    done
    echo "windows_named: no clean answer from xdotool" >>"$scratch/xdotool.log"
    return 1
}
dialog=
for _ in $(seq 1 300); do # up to 60 s: a first Chromium start on a loaded CI machine is slow
    dialog=$(windows_named '^Unlock Security Device$' | head -n 1)
    [ -z "$dialog" ] || break
    sleep 0.2
done
if [ -n "$dialog" ]; then
    ok "login: Chromium asks for the PIN in 'Unlock Security Device' ($(since) s)"
    [ -z "${JPKI_BROWSER_SCREENSHOT:-}" ] ||
        { sleep 0.3; xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng >"$scratch/dialog.png"; }
    xdotool type --window "$dialog" "$AUTH_PIN"
    # The dialog closes on the key press; the release then fails with BadWindow (harmless).
    xdotool key --window "$dialog" Return 2>/dev/null || true
else
    not_ok "login: Chromium asks for the PIN in 'Unlock Security Device' (none after $(since) s)"
    echo "# windows now: $(xdotool search --name . getwindowname %@ 2>&1 | tr '\n' '|' | head -c 600)"
    echo "# Chromium's log (tail):"
    tail -n 25 "$scratch/chromium.log" | sed 's/^/#   /'
fi

out=$scratch/out
mkdir -p "$out"
timeout 40 python3 "$here/lib/chromium_cdp.py" "$CDP_PORT" "$out/page-tls12.json" --timeout 30 \
    >>"$scratch/cdp.log" 2>&1
page12() {
    python3 -c "
import json,sys
d=json.load(open(sys.argv[1])); t=d.get('text') or ''
print('# TLS 1.2 page:', d.get('url'), repr(t[:120]), d.get('error', ''))
assert 'Protocol  : TLSv1.2' in t and 'Client certificate' in t and sys.argv[2] in t" \
        "$out/page-tls12.json" "$AUTH_SUBJECT_CN"
}
check "sign + TLS 1.2: page read over DevTools shows our client certificate ($AUTH_SUBJECT_CN)" page12
check "TLS 1.2: s_server saw the card's authentication certificate" \
    grep -q "^depth=0 .*CN = $AUTH_SUBJECT_CN" "$scratch/s_server-tls1_2.log"

timeout 40 python3 "$here/lib/chromium_cdp.py" "$CDP_PORT" "$out/page-tls13.json" --timeout 30 \
    --navigate "$URL13" >>"$scratch/cdp.log" 2>&1
if module_has_pss; then
    echo "# module advertises CKM_RSA_PKCS_PSS on the auth token: TLS 1.3 must succeed"
    page13() {
        python3 -c "
import json,sys
d=json.load(open(sys.argv[1])); t=d.get('text') or ''
print('# TLS 1.3 page:', d.get('url'), repr(t[:120]), d.get('error', ''))
assert 'Protocol  : TLSv1.3' in t and 'Client certificate' in t and sys.argv[2] in t" \
            "$out/page-tls13.json" "$AUTH_SUBJECT_CN"
    }
    check "TLS 1.3 (card RSA-PSS): page shows our client certificate" page13
else
    echo "# module offers no CKM_RSA_PKCS_PSS: TLS 1.3 must fail"
    page13() {
        python3 -c "
import json,sys
d=json.load(open(sys.argv[1])); t=d.get('text') or ''
print('# TLS 1.3 page:', d.get('url'), repr(t[-160:]), d.get('error', ''))
assert 'ERR_SSL_CLIENT_AUTH_NO_COMMON_ALGORITHMS' in t" "$out/page-tls13.json"
    }
    check "TLS 1.3 (PKCS#1 v1.5 only): ERR_SSL_CLIENT_AUTH_NO_COMMON_ALGORITHMS" page13
fi

second_dialog() { # succeeds only on a clean answer that lists no dialog
    local ids
    ids=$(windows_named '^Unlock Security Device$') && [ -z "$ids" ]
}
check "login: no second PIN dialog" second_dialog
stop_bg
stats_after=$(card_stats)
verify_delta=$(($(stat_field "$stats_after" verify_count) - $(stat_field "$stats_before" verify_count)))
failed_delta=$(($(stat_field "$stats_after" failed_verify_count) - $(stat_field "$stats_before" failed_verify_count)))
sign_delta=$(($(stat_field "$stats_after" signatures) - $(stat_field "$stats_before" signatures)))
check "login: exactly one VERIFY reached the card, and it succeeded (got $verify_delta, failed $failed_delta)" \
    test "$verify_delta" -eq 1 -a "$failed_delta" -eq 0
check "sign: the card made at least one signature ($sign_delta)" test "$sign_delta" -ge 1
echo "# token: $AUTH_TOKEN_LABEL; run took $(python3 -c "import time;print(round(time.time()-$started,1))") s after Chromium start"

finish
