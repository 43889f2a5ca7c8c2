#!/usr/bin/env bash
# The J-LIS trust anchors (issue 15) against the virtual card, whose CAs are test CAs:
# `jpki status` and `jpki doctor` name its signature CA as not a J-LIS CA; `jpki verify`
# without --ca refuses its signature as not chaining to J-LIS and accepts it with --ca set to
# the card's (test) signature CA. The anchors themselves: the unit tests of cli/src/anchors.rs
# (each shipped certificate against its pin and its own signature).
#
#   tests/harness/with-card.sh [--profile extended] -- bash tests/integration/anchors.sh
set -uo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib/check.bash"
source "$here/lib/paths.bash"
need_cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work/home
mkdir -p "$HOME"
# Certificates valid now (another suite in the same harness may have expired them).
"$vc" ctl --control "$JPKI_TEST_CONTROL" certs days 1000 >/dev/null
"$vc" export --state "$JPKI_TEST_STATE" --out "$work/card" >/dev/null

"$cli" status --json >"$work/s.json" 2>/dev/null
check "status: the signature CA is not a J-LIS CA" python3 -c "
import json; c = json.load(open('$work/s.json'))['readers'][0]['card']['certificates']
assert c['signature_ca']['jlis']['status'] == 'not_jlis', c['signature_ca']
assert c['authentication_ca']['jlis']['status'] in ('not_jlis', 'not_checked'), c['authentication_ca']"
"$cli" status >"$work/s.txt" 2>&1
check "status text: NOT a J-LIS CA" grep -q "NOT a J-LIS CA" "$work/s.txt"
"$cli" doctor >"$work/d.txt" 2>&1
check "doctor flags the card's signature CA" grep -q "signature CA is not a J-LIS CA" "$work/d.txt"

printf 'a document\n' >"$work/doc.txt"
# The card's current password (another suite in the same harness may have changed it).
password=$(python3 -c "import json; print(json.load(open('$JPKI_TEST_STATE'))['sign_password'])")
"$cli" --pin-fd 3 sign --out "$work/doc.p7s" "$work/doc.txt" 3<<<"$password" >/dev/null 2>&1
check "jpki sign made a signature" test -s "$work/doc.p7s"
"$cli" verify "$work/doc.txt" "$work/doc.p7s" >"$work/v.out" 2>"$work/v.err"
rc=$?
check "verify without --ca refuses it (exit 7)" test "$rc" -eq 7
check "... as not chaining to J-LIS" grep -q "does not chain to a J-LIS CA" "$work/v.err"
"$cli" verify --ca "$work/card/sign_ca_cert.pem" "$work/doc.txt" "$work/doc.p7s" >"$work/v2.out" 2>&1
check "verify with --ca set to the test CA accepts it" test $? -eq 0
check_done
