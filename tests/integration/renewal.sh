#!/usr/bin/env bash
# Renewal reminders (issue 15): `jpki status` / `jpki doctor` warn for a certificate 30 days
# before expiry and for an expired one, and stay quiet for one valid for years; the module
# logs one warning per process and key, and still signs with an expired certificate.
# The card's certificates are replaced through its control socket (`ctl certs days N`).
#
# Run inside the harness, after `cargo build --release --lib --bin jpki`:
#   tests/harness/with-card.sh [--profile extended] -- bash tests/integration/renewal.sh
set -uo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib/check.bash"
source "$here/lib/paths.bash"
need_module
need_cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work/home
mkdir -p "$HOME"
AUTH_PIN=1234
SIGN_PIN=ABC123
certs() { "$vc" ctl --control "$JPKI_TEST_CONTROL" certs days "$1" >"$work/ctl.out" 2>&1; }
p11() { pkcs11-tool --module "$module" "$@"; }
# The phone token shows its authentication certificate only after the PIN: status cannot judge it.
phone=0; [ "${JPKI_TEST_PROFILE:-}" = phone ] && phone=1

for days in 1500 30 -10; do
    check "card given certificates ending in $days days" certs "$days"
    "$cli" status --json >"$work/s.json" 2>"$work/s.err"
    "$cli" status >"$work/s.txt" 2>&1
    "$cli" doctor --json >"$work/d.json" 2>"$work/d.err"
    "$cli" doctor >"$work/d.txt" 2>&1
    if [ "$phone" = 0 ]; then
        check "$days days: status --json validity and days" python3 - "$work/s.json" "$days" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); days = int(sys.argv[2])
c = r["readers"][0]["card"]["certificates"]["authentication"]
want = "valid" if days > 90 else ("renewal_open" if days >= 0 else "expired")
assert c["validity"] == want, c
assert abs(c["days_left"] - days) <= 1, c
assert ("warning" in c) == (want != "valid"), c
if want != "valid":
    assert "city office" in c["warning"], c
PY
        case $days in
        1500) check "1500 days: status text quiet" bash -c "! grep -q WARNING '$work/s.txt'"
              check "1500 days: doctor reports the certificate ok" grep -q 'authentication certificate valid until' "$work/d.txt" ;;
        30)   check "30 days: status text warns, renewal open" grep -q "WARNING: the certificate expires in 29\|WARNING: the certificate expires in 30" "$work/s.txt"
              check "30 days: doctor warning" python3 -c "
import json; f = json.JSONDecoder().raw_decode(open('$work/d.json').read())[0]['findings']
assert any(x['check'] == 'certificate' and x['level'] == 'warning' for x in f), f" ;;
        -10)  check "expired: status text says expired and what to do" grep -q "WARNING: the certificate expired 10 day(s) ago.*city office" "$work/s.txt"
              check "expired: doctor problem" python3 -c "
import json; f = json.JSONDecoder().raw_decode(open('$work/d.json').read())[0]['findings']
assert any(x['check'] == 'certificate' and x['level'] == 'problem' for x in f), f" ;;
        esac
    fi
    # The module: one warning per process and key, signing never blocked.
    JPKI_PKCS11_LOG=warn p11 --slot 0 --login --pin "$AUTH_PIN" --sign -m SHA256-RSA-PKCS --id 01 \
        -i "$work/ctl.out" -o "$work/sig" >/dev/null 2>"$work/m.err"
    check "$days days: the authentication key still signs" test $? -eq 0
    n=$(grep -c "certificate.*\(expires in\|expired\)" "$work/m.err")
    if [ "$days" = 1500 ]; then
        check "1500 days: module quiet" test "$n" -eq 0
    else
        check "$days days: module warns exactly once" test "$n" -eq 1
    fi
    JPKI_PKCS11_LOG=warn p11 --slot 1 --login --pin "$SIGN_PIN" --sign -m SHA256-RSA-PKCS --id 02 \
        -i "$work/ctl.out" -o "$work/sig" >/dev/null 2>"$work/m2.err"
    check "$days days: the signature key still signs" test $? -eq 0
done

check_done
