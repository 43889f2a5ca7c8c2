#!/usr/bin/env bash
# Usage history (issue 15): after pkcs11-tool signs with each key, `jpki history --json` lists
# both signatures with program pkcs11-tool, key, mechanism and the data's SHA-256; PIN
# verifications (with tries left) and a PIN change are recorded; the files are 0600 and hold
# no PIN (ASCII or hex) and nothing of the signature certificate; an unwritable history
# location costs no failed operation (one warning); JPKI_PKCS11_HISTORY=off (or history = off
# in the configuration file) writes nothing, a bad value is a warning and means on;
# --key and --since filter.
#
# Run inside the harness, after `cargo build --release --lib --bin jpki`:
#   tests/harness/with-card.sh [--profile extended] -- bash tests/integration/history.sh
set -uo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib/check.bash"
source "$here/lib/paths.bash"
need_module
need_cli

work=$(mktemp -d)
trap 'umount "$work/ro" 2>/dev/null; rm -rf "$work"' EXIT
export XDG_STATE_HOME=$work/state
hist=$XDG_STATE_HOME/jpki-pkcs11
unset JPKI_PKCS11_HISTORY
AUTH_PIN=1234
NEW_AUTH_PIN=5678
SIGN_PIN=ABC123
p11() { pkcs11-tool --module "$module" "$@"; }

head -c 3000 /dev/urandom >"$work/data"
data_sha=$(sha256sum "$work/data" | cut -d' ' -f1)

# ----- recording through pkcs11-tool -----------------------------------------------------------
check "auth key signs (SHA256-RSA-PKCS)" \
    p11 --slot 0 --login --pin "$AUTH_PIN" --sign -m SHA256-RSA-PKCS --id 01 -i "$work/data" -o "$work/sig1"
check "sign key signs (SHA256-RSA-PKCS)" \
    p11 --slot 1 --login --pin "$SIGN_PIN" --sign -m SHA256-RSA-PKCS --id 02 -i "$work/data" -o "$work/sig2"
p11 --slot 0 --login --pin 9999 -O >/dev/null 2>&1
check "auth PIN changed" p11 --slot 0 --login --pin "$AUTH_PIN" --change-pin --new-pin "$NEW_AUTH_PIN"
check "auth PIN changed back" p11 --slot 0 --login --pin "$NEW_AUTH_PIN" --change-pin --new-pin "$AUTH_PIN"

"$cli" history --json >"$work/h.json" 2>"$work/h.err"
check "jpki history --json exits 0" test $? -eq 0
py() { python3 - "$work/h.json" "$data_sha" "$@"; }
check "both signatures listed: program pkcs11-tool, key, mechanism, data SHA-256" py <<'PY'
import json, os, sys
entries = json.load(open(sys.argv[1])); sha = sys.argv[2]
signs = [e for e in entries if e["event"] == "sign"]
for key in ("auth", "sign"):
    m = [e for e in signs if e["key"] == key and e["result"] == "ok"]
    assert len(m) == 1, (key, signs)
    e = m[0]
    assert os.path.basename(e["program"]) == "pkcs11-tool", e
    assert e["mechanism"] == "CKM_SHA256_RSA_PKCS", e
    assert e["data_sha256"] == sha, e
    assert e["pid"] > 0 and e["time"].endswith("Z"), e
    assert e["token"].startswith("JPKI Auth" if key == "auth" else "JPKI Sign"), e
PY
check "PIN verifications recorded, a wrong one with tries left 2" py <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))
v = [e for e in entries if e["event"] == "pin_verify"]
assert any(e["key"] == "auth" and e["result"] == "pin_incorrect" and e["tries_left"] == 2 for e in v), v
assert any(e["key"] == "sign" and e["result"] == "ok" and e["tries_left"] == 5 for e in v), v
PY
check "PIN changes recorded" py <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))
c = [e for e in entries if e["event"] == "pin_change" and e["result"] == "ok"]
assert len(c) == 2 and all(e["key"] == "auth" for e in c), c
PY
check "signature certificate read recorded" py <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))
assert any(e["event"] == "read_sign_certificate" and e["key"] == "sign" for e in entries), entries
PY

"$cli" history --key sign --json >"$work/hs.json"
check "--key sign: only the signature key" python3 -c "
import json; e = json.load(open('$work/hs.json')); assert e and all(x['key'] == 'sign' for x in e), e"
"$cli" history --since 2999-01-01 --json >"$work/hf.json"
check "--since in the future: nothing" python3 -c "
import json; assert json.load(open('$work/hf.json')) == []"
"$cli" history --since 1h --json >"$work/hh.json"
check "--since 1h: everything just written" cmp -s "$work/hh.json" "$work/h.json"
"$cli" history >"$work/h.txt"
check "text: program path first on each line" python3 -c "
lines = open('$work/h.txt').read().splitlines(); assert lines
assert all(l.split()[0].endswith('pkcs11-tool') for l in lines), lines"
"$cli" history --since yesterday >/dev/null 2>&1
check "--since with a bad value: usage error (2)" test $? -eq 2

# ----- what the files must not hold --------------------------------------------------------------
check "history directory 0700, files 0600" bash -c "
[ \"\$(stat -c %a '$hist')\" = 700 ] || exit 1
for f in '$hist'/*; do [ \"\$(stat -c %a \"\$f\")\" = 600 ] || exit 1; done"
"$vc" export --state "$JPKI_TEST_STATE" --out "$work/card" >/dev/null
check "no PIN (ASCII or hex) in any field but time, pid and hash" python3 - "$hist" \
    "$AUTH_PIN" "$NEW_AUTH_PIN" "$SIGN_PIN" <<'PY'
import glob, json, sys
d, pins = sys.argv[1], sys.argv[2:]
raw = b"".join(open(f, "rb").read() for f in glob.glob(d + "/*"))
for p in pins:
    for form in (p.encode().hex(), p.encode().hex().upper()):
        assert form.encode() not in raw, form
assert pins[2].encode() not in raw  # the password is distinctive enough for the raw bytes
for line in raw.decode().splitlines():
    e = json.loads(line)
    for k, v in e.items():
        if k in ("time", "pid", "data_sha256", "tries_left"):
            continue
        for p in pins:
            assert p not in str(v), (k, v)
PY
check "no byte sequence of the signature certificate, no personal data" python3 - "$hist" \
    "$work/card/sign_cert.der" "$work/card/auth_cert.der" "$JPKI_TEST_STATE" <<'PY'
import base64, glob, json, sys
d, sign, auth, state = sys.argv[1:]
raw = b"".join(open(f, "rb").read() for f in glob.glob(d + "/*"))
sign, auth = open(sign, "rb").read(), open(auth, "rb").read()
W = 12
for i in range(len(sign) - W):
    w = sign[i:i + W]
    if w in auth:  # shared with the public authentication certificate (issuer names, OIDs)
        continue
    for form in (w, w.hex().encode(), w.hex().upper().encode()):
        assert form not in raw, (i, form)
assert base64.b64encode(sign[40:100]) not in raw
personal = json.load(open(state)).get("personal", {})
for k, v in personal.items():
    if isinstance(v, str) and len(v) >= 4:
        assert v.encode() not in raw, k
PY

# ----- an unwritable location costs nothing ------------------------------------------------------
mkdir -p "$work/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$work/ro" 2>/dev/null; then where=$work/ro/state
else : >"$work/ro/file"; where=$work/ro/file/state; fi   # a path under a file: ENOTDIR
XDG_STATE_HOME=$where JPKI_PKCS11_LOG=warn \
    p11 --slot 1 --login --pin "$SIGN_PIN" --sign -m SHA256-RSA-PKCS --id 02 -i "$work/data" -o "$work/sig3" \
    >"$work/ro.out" 2>"$work/ro.err"
check "read-only history location: the signature still succeeds" test $? -eq 0
check "read-only history location: one warning" test "$(grep -c 'usage history not written' "$work/ro.err")" -eq 1
check "read-only history location: nothing written" test ! -e "$where/jpki-pkcs11/history.jsonl"

# ----- switched off -------------------------------------------------------------------------------
before=$(cat "$hist"/history*.jsonl | wc -l)
JPKI_PKCS11_HISTORY=off p11 --slot 0 --login --pin "$AUTH_PIN" --sign -m SHA256-RSA-PKCS --id 01 \
    -i "$work/data" -o "$work/sig4" >/dev/null 2>&1
check "JPKI_PKCS11_HISTORY=off: signature succeeds" test $? -eq 0
check "JPKI_PKCS11_HISTORY=off: nothing recorded" test "$(cat "$hist"/history*.jsonl | wc -l)" -eq "$before"
mkdir -p "$work/cfg/jpki-pkcs11"
printf '[pkcs11-tool]\nhistory = off\n' >"$work/cfg/jpki-pkcs11/config"
XDG_CONFIG_HOME=$work/cfg p11 --slot 0 --login --pin "$AUTH_PIN" --sign -m SHA256-RSA-PKCS --id 01 \
    -i "$work/data" -o "$work/sig5" >/dev/null 2>&1
check "history = off in the configuration file: signature succeeds" test $? -eq 0
check "history = off in the configuration file: nothing recorded" test "$(cat "$hist"/history*.jsonl | wc -l)" -eq "$before"
JPKI_PKCS11_HISTORY=sometimes p11 --slot 0 --login --pin "$AUTH_PIN" --sign -m SHA256-RSA-PKCS --id 01 \
    -i "$work/data" -o "$work/sig6" >/dev/null 2>"$work/bad.err"
check "JPKI_PKCS11_HISTORY=sometimes: signature succeeds" test $? -eq 0
check "... with a warning" grep -q "history" "$work/bad.err"
check "... and the default (on): recorded" test "$(cat "$hist"/history*.jsonl | wc -l)" -gt "$before"

check_done
