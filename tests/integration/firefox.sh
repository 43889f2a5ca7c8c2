#!/usr/bin/env bash
# Firefox ESR logs in to a TLS server with the card's authentication certificate.
#
# Firefox runs headless and is driven through Marionette. The module is registered the way the
# README tells users to: the enterprise policy SecurityDevices in policies.json of Firefox's
# distribution directory (here a private copy, bind-mounted in the harness's own mount
# namespace, so the machine's Firefox is untouched). The PIN is typed into Firefox's own
# password prompt, answered once (docs/client-behaviour.md, "Browsers in tests").
#
# Servers: openssl s_server -Verify 2 -www on 127.0.0.1, one TLS 1.2 only, one TLS 1.3 only.
# TLS 1.2 must log in and show our certificate. TLS 1.3 needs RSA-PSS in CertificateVerify: with a
# module that advertises CKM_RSA_PKCS_PSS on the auth token it must work too; without it NSS sends
# no certificate and the server answers alert 116 (certificate_required).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/browser-common.sh"

command -v firefox-esr >/dev/null || { echo "firefox-esr not installed" >&2; exit 2; }
python3 -c 'import marionette_driver' 2>/dev/null || { echo "pip install marionette_driver" >&2; exit 2; }

PORT12=18412
PORT13=18413
MARIONETTE_PORT=28282
AUTH_TOKEN_LABEL=$(pkcs11-tool --module "$JPKI_MODULE" -L 2>/dev/null |
    sed -n 's/^ *token label *: *//p' | head -n 1 | sed 's/ *$//')
[ -n "$AUTH_TOKEN_LABEL" ] || { not_ok "module lists the auth token"; finish; }

# --- Registration by policy: the same file the README gives users. ---
# Debian's firefox-esr reads /etc/firefox/policies/policies.json, else
# /usr/lib/firefox-esr/distribution/policies.json (seen with strace). The README uses the latter;
# here it is a private copy of that directory, bind-mounted in the harness's mount namespace.
ffdist=/usr/lib/firefox-esr/distribution
[ ! -e /etc/firefox/policies/policies.json ] ||
    { echo "/etc/firefox/policies/policies.json would override the test policy" >&2; exit 2; }
dist_copy=$scratch/ff-distribution
mkdir -p "$dist_copy"
cp -a "$ffdist/." "$dist_copy/" 2>/dev/null || true
mount --bind "$dist_copy" "$ffdist" || { not_ok "private $ffdist"; finish; }
cat >"$ffdist/policies.json" <<EOF
{
  "policies": {
    "SecurityDevices": {
      "Add": {
        "My Number Card (JPKI)": "$BROWSER_MODULE"
      }
    }
  }
}
EOF

# --- Profile: NSS db trusting the test CA (server certificate); automatic client cert choice. ---
profile=$scratch/profile
mkdir -p "$profile"
certutil -N -d "sql:$profile" --empty-password
certutil -A -d "sql:$profile" -n "browser test CA" -t "C,," -i "$scratch/pki/ca.pem"
cat >"$profile/user.js" <<EOF
user_pref("marionette.port", $MARIONETTE_PORT);
user_pref("security.default_personal_cert", "Select Automatically");
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("security.OCSP.enabled", 0);
user_pref("security.remote_settings.crlite_filters.enabled", false);
EOF

start_s_server tls1_2 "$PORT12"
start_s_server tls1_3 "$PORT13"

stats_before=$(card_stats)
export HOME=$scratch/home
mkdir -p "$HOME"
start_bg "$scratch/firefox.log" timeout 90 firefox-esr --headless --marionette \
    -remote-allow-system-access --no-remote --profile "$profile"
wait_for 30 port_open "$MARIONETTE_PORT" || { not_ok "Firefox starts Marionette"; cat "$scratch/firefox.log" >&2; finish; }

out=$scratch/out
mkdir -p "$out"
started=$(date +%s.%N)
if timeout 75 python3 "$here/lib/firefox_marionette.py" "$MARIONETTE_PORT" "$JPKI_MODULE" \
    "$AUTH_TOKEN_LABEL" "$AUTH_PIN" "$out" \
    "https://127.0.0.1:$PORT12/" "https://127.0.0.1:$PORT13/" >"$scratch/driver.log" 2>&1; then
    ok "Marionette session ran ($(python3 -c "import time;print(round(time.time()-$started,1))") s)"
else
    not_ok "Marionette session ran"
    cat "$scratch/driver.log" >&2
fi
stop_bg
stats_after=$(card_stats)

jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $2" "$1" "${@:3}"; }

# Discover: the policy loaded our module, and Firefox sees both tokens.
check "discover: policy SecurityDevices loaded the module with both tokens" \
    jq_py "$out/modules.json" "
m=[x for x in d if x['libName']==sys.argv[2]]
assert m, d
toks=[s['token'] for s in m[0]['slots'] if s['token']]
print('# tokens:', toks)
assert len(toks)>=2" "$BROWSER_MODULE"

# Login: exactly one prompt, for the auth token, answered once; one VERIFY reached the card.
check "login: exactly one password prompt, for the auth token, answered once" \
    jq_py "$out/prompts.json" "
for p in d: print('# prompt:', p['action'], repr(p['text']))
a=[p for p in d if p['action']=='answered']
assert len(d)==1 and len(a)==1 and '('+sys.argv[2]+')' in a[0]['text'], d" "$AUTH_TOKEN_LABEL"
verify_delta=$(($(stat_field "$stats_after" verify_count) - $(stat_field "$stats_before" verify_count)))
failed_delta=$(($(stat_field "$stats_after" failed_verify_count) - $(stat_field "$stats_before" failed_verify_count)))
check "login: exactly one VERIFY reached the card, and it succeeded (got $verify_delta, failed $failed_delta)" \
    test "$verify_delta" -eq 1 -a "$failed_delta" -eq 0
sign_delta=$(($(stat_field "$stats_after" signatures) - $(stat_field "$stats_before" signatures)))
echo "# card signatures during the run: $sign_delta"

# TLS 1.2: the page shows our client certificate.
page12() { # page12 [OUTDIR]
    jq_py "${1:-$out}/page-1.json" "
t=d.get('text') or ''
print('# TLS 1.2 page:', d.get('error'), d.get('final_url'), repr(t[:80]))
assert d.get('final_url')==sys.argv[3], d.get('final_url')
assert 'Protocol  : TLSv1.2' in t, 'protocol'
assert 'Client certificate' in t, 'no client certificate'
assert sys.argv[2] in t, 'subject'" "$AUTH_SUBJECT_CN" "https://127.0.0.1:$PORT12/"
}
check "sign + TLS 1.2: page fetched with our client certificate ($AUTH_SUBJECT_CN)" page12
check "sign: the card made at least one signature ($sign_delta)" test "$sign_delta" -ge 1
check "TLS 1.2: s_server saw the card's authentication certificate" \
    grep -q "^depth=0 .*CN = $AUTH_SUBJECT_CN" "$scratch/s_server-tls1_2.log"

# TLS 1.3: depends on whether the module offers RSA-PSS for the auth key.
if module_has_pss; then
    echo "# module advertises CKM_RSA_PKCS_PSS on the auth token: TLS 1.3 must succeed"
    page13() {
        jq_py "$out/page-2.json" "
t=d.get('text') or ''
print('# TLS 1.3 page:', d.get('error'), d.get('final_url'), repr(t[:80]))
assert d.get('final_url')==sys.argv[3], d.get('final_url')
assert 'Protocol  : TLSv1.3' in t and 'Client certificate' in t and sys.argv[2] in t" "$AUTH_SUBJECT_CN" "https://127.0.0.1:$PORT13/"
    }
    check "TLS 1.3 (card RSA-PSS): page fetched with our client certificate" page13
else
    echo "# module offers no CKM_RSA_PKCS_PSS: TLS 1.3 must fail with certificate_required"
    page13() {
        jq_py "$out/page-2.json" "
t=d.get('text') or ''
print('# TLS 1.3 page:', d.get('error'), d.get('final_url'), repr(t[:200]))
assert (d.get('final_url') or '').startswith('about:neterror'), d.get('final_url')
assert 'Client certificate' not in t
print('# Firefox error code:', d.get('net_error'))
assert d.get('net_error') == 'SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT', d.get('net_error')"
    }
    check "TLS 1.3 (PKCS#1 v1.5 only): Firefox shows an error page" page13
    check "TLS 1.3 (PKCS#1 v1.5 only): no certificate sent, server sent alert 116" \
        grep -q "peer did not return a certificate\|certificate required" "$scratch/s_server-tls1_3.log"
fi

# A malformed PIN typed first ("12", two digits, in the auth token's prompt): C_Login answers
# CKR_PIN_INCORRECT without reaching the card, and Firefox shows its password prompt again, where
# the right PIN logs in (docs/conformance.md). The card sees exactly one VERIFY, the right one.
# (Measured: the module's former CKR_PIN_LEN_RANGE gave the same second prompt in this flow.)
start_s_server tls1_2 "$PORT12"
stats_before=$(card_stats)
out2=$scratch/out-malformed
mkdir -p "$out2"
start_bg "$scratch/firefox-malformed.log" timeout 90 firefox-esr --headless --marionette \
    -remote-allow-system-access --no-remote --profile "$profile"
if wait_for 30 port_open "$MARIONETTE_PORT" &&
    timeout 75 python3 "$here/lib/firefox_marionette.py" "$MARIONETTE_PORT" "$JPKI_MODULE" \
        "$AUTH_TOKEN_LABEL" "12,$AUTH_PIN" "$out2" \
        "https://127.0.0.1:$PORT12/" >"$scratch/driver-malformed.log" 2>&1; then
    ok "malformed PIN first: Marionette session ran"
else
    not_ok "malformed PIN first: Marionette session ran"
    cat "$scratch/driver-malformed.log" >&2
fi
stop_bg
stats_after=$(card_stats)
check "malformed PIN first: Firefox asked again for the auth token (two prompts, both answered)" \
    jq_py "$out2/prompts.json" "
for p in d: print('# prompt:', p['action'], repr(p['text']))
a=[p for p in d if p['action']=='answered' and '('+sys.argv[2]+')' in p['text']]
assert len(d)==2 and len(a)==2, d" "$AUTH_TOKEN_LABEL"
check "malformed PIN first: then TLS 1.2 with our client certificate" page12 "$out2"
verify_delta=$(($(stat_field "$stats_after" verify_count) - $(stat_field "$stats_before" verify_count)))
failed_delta=$(($(stat_field "$stats_after" failed_verify_count) - $(stat_field "$stats_before" failed_verify_count)))
malformed_delta=$(($(stat_field "$stats_after" malformed_verify_count) - $(stat_field "$stats_before" malformed_verify_count)))
check "malformed PIN first: one VERIFY reached the card, the right one (got $verify_delta, failed $failed_delta, malformed $malformed_delta)" \
    test "$verify_delta" -eq 1 -a "$failed_delta" -eq 0 -a "$malformed_delta" -eq 0

finish
