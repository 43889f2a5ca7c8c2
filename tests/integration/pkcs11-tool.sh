#!/usr/bin/env bash
# OpenSC's pkcs11-tool against the module: listing, objects, signing with every mechanism on
# both tokens (signatures checked by openssl against the certificates read back through the
# module), pkcs11-tool's own tests (--test, --test-fork, --test-threads), PIN counter flags
# after a wrong PIN, and malformed PINs that must never reach the card.
#
# Run inside the harness (fresh card state), after `cargo build --release --lib`:
#   tests/harness/with-card.sh [--profile extended] -- tests/integration/pkcs11-tool.sh
# Environment: JPKI_MODULE (module under test), JPKI_VC (virtual card binary, for `stats`),
# JPKI_TEST_CONTROL (card control socket; set by the harness).
set -uo pipefail

root=${JPKI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
module=${JPKI_MODULE:-$root/target/release/libjpki_pkcs11.so}
vc=${JPKI_VC:-${JPKI_TEST_CARD_BIN:-$root/target/debug/jpki-virtual-card}}
: "${JPKI_TEST_CONTROL:?run inside tests/harness/with-card.sh}"
[ -f "$module" ] || { echo "not ok - module $module missing (cargo build --release --lib)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"
p11() { pkcs11-tool --module "$module" "$@"; }
stat_of() { # stat_of KEY: one number from the card's `stats`
    "$vc" ctl --control "$JPKI_TEST_CONTROL" stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
# has "description" PATTERN FILE / lacks ...
has() { if grep -q -- "$2" "$3"; then ok "$1"; else not_ok "$1 (no '$2')"; sed 's/^/    /' "$3" | tail -20; fi; }
lacks() { if grep -q -- "$2" "$3"; then not_ok "$1 ('$2' present)"; sed 's/^/    /' "$3" | tail -20; else ok "$1"; fi; }

AUTH_PIN=1234
SIGN_PIN=ABC123
# slot id, PIN, CKA_ID, name
tokens=("0 $AUTH_PIN 01 auth" "1 $SIGN_PIN 02 sign")

# ----- listing -------------------------------------------------------------------------------
p11 -L >"$work/L" 2>&1
has "-L lists the authentication token" "JPKI Auth" "$work/L"
has "-L lists the signature token" "JPKI Sign" "$work/L"
p11 -T >"$work/T" 2>&1
# "rng": C_GenerateRandom serves the operating system's generator (docs/conformance.md).
has "-T: token flags" "login required, rng, token initialized, PIN initialized, readonly" "$work/T"
p11 --slot 0 --generate-random 64 --output-file "$work/random" >"$work/R" 2>&1
check "--generate-random 64: 64 bytes, not all zero" \
    bash -c "test \$(stat -c %s '$work/random') -eq 64 && tr -d '\\000' < '$work/random' | grep -q ."
has "-T: auth PIN length 4/4" "pin min/max        : 4/4" "$work/T"
has "-T: sign password length 6/16" "pin min/max        : 6/16" "$work/T"
lacks "-T: no PIN counter flag on a fresh card" "count low\|final try\|locked" "$work/T"
for slot in 0 1; do
    p11 --slot "$slot" -M >"$work/M$slot" 2>&1
    for mech in RSA-PKCS SHA1-RSA-PKCS SHA224-RSA-PKCS SHA256-RSA-PKCS SHA384-RSA-PKCS SHA512-RSA-PKCS; do
        has "-M slot $slot: $mech (hw, sign, verify)" "^  $mech, keySize={2048,2048}, hw, sign, verify" "$work/M$slot"
    done
    lacks "-M slot $slot: never RSA-X-509" "RSA-X-509" "$work/M$slot"
done
p11 --slot 0 -O >"$work/O0" 2>&1
# The phone token shows its authentication certificate and public key only after the PIN
# (docs/phone-token.md): there they must be hidden before login and listed after it.
phone=0; [ "${JPKI_TEST_PROFILE:-}" = phone ] && phone=1
if [ "$phone" = 1 ]; then
    lacks "-O auth token (phone): user certificate hidden before login" "label:      JPKI User Authentication$" "$work/O0"
    lacks "-O auth token (phone): public key hidden before login" "Public Key Object; RSA 2048 bits" "$work/O0"
    p11 --slot 0 --login --pin 1234 -O >"$work/O0" 2>&1
fi
when=" without login"; [ "$phone" = 1 ] && when=" (phone: after login)"
has "-O auth token: user certificate$when" "label:      JPKI User Authentication$" "$work/O0"
has "-O auth token: CA certificate" "JPKI User Authentication CA" "$work/O0"
has "-O auth token: public key$when" "Public Key Object; RSA 2048 bits" "$work/O0"
p11 --slot 1 -O >"$work/O1" 2>&1
has "-O sign token: CA certificate without login" "JPKI Digital Signature CA" "$work/O1"
lacks "-O sign token: signature certificate hidden before the password" "label:      JPKI Digital Signature$" "$work/O1"
p11 --slot 1 --login --pin "$SIGN_PIN" -O >"$work/O1l" 2>&1
has "-O sign token after login: signature certificate" "label:      JPKI Digital Signature$" "$work/O1l"
has "-O sign token after login: private key" "Private Key Object; RSA" "$work/O1l"

# ----- signatures, verified by openssl against the certificates read through the module ------
head -c 5000 /dev/urandom >"$work/data"
for t in "${tokens[@]}"; do
    read -r slot pin id name <<<"$t"
    login=()
    { [ "$name" = sign ] || [ "$phone" = 1 ]; } && login=(--login --pin "$pin")
    if p11 --slot "$slot" "${login[@]}" --read-object --type cert --id "$id" -o "$work/$name.der" >"$work/out" 2>&1 \
        && openssl x509 -inform DER -in "$work/$name.der" -pubkey -noout >"$work/$name.pub" 2>>"$work/out"; then
        ok "$name certificate read back through the module (--read-object --type cert)"
    else
        not_ok "$name certificate read back"; sed 's/^/    /' "$work/out"
    fi
    for hash in sha1 sha256 sha384 sha512; do
        mech=$(echo "$hash" | tr a-z A-Z)-RSA-PKCS
        rm -f "$work/sig"
        p11 --slot "$slot" --login --pin "$pin" --sign -m "$mech" --id "$id" \
            -i "$work/data" -o "$work/sig" >"$work/out" 2>&1
        check "$name token: $mech signature verifies with openssl" \
            openssl dgst -"$hash" -verify "$work/$name.pub" -signature "$work/sig" "$work/data"
    done
    # CKM_RSA_PKCS over a DigestInfo that openssl builds.
    for hash in sha256 sha512; do
        digest=$(openssl dgst -"$hash" -binary "$work/data" | od -An -tx1 | tr -d ' \n')
        cat >"$work/di.cnf" <<CNF
asn1=SEQUENCE:digest_info
[digest_info]
algorithm=SEQUENCE:algorithm
digest=FORMAT:HEX,OCTETSTRING:$digest
[algorithm]
oid=OID:$hash
parameters=NULL
CNF
        openssl asn1parse -genconf "$work/di.cnf" -out "$work/di.der" -noout >/dev/null 2>&1
        rm -f "$work/sig"
        p11 --slot "$slot" --login --pin "$pin" --sign -m RSA-PKCS --id "$id" \
            -i "$work/di.der" -o "$work/sig" >"$work/out" 2>&1
        check "$name token: RSA-PKCS over an openssl DigestInfo ($hash) verifies" \
            openssl dgst -"$hash" -verify "$work/$name.pub" -signature "$work/sig" "$work/data"
    done
done

# ----- pkcs11-tool's own tests ----------------------------------------------------------------
for t in "${tokens[@]}"; do
    read -r slot pin id name <<<"$t"
    p11 --slot "$slot" --test --login --pin "$pin" >"$work/test" 2>&1
    has "--test --login on the $name token: No errors" "No errors" "$work/test"
done
if p11 --test-fork >"$work/fork" 2>&1 && grep -q "C_Initialize in forked child" "$work/fork" \
    && ! grep -qi "error\|CKR_" "$work/fork"; then
    ok "--test-fork: C_Initialize in the child works"
else
    not_ok "--test-fork"; sed 's/^/    /' "$work/fork"
fi
# Each thread's C_Initialize races with pkcs11-tool's own in the main thread: whichever comes
# second must get CKR_CRYPTOKI_ALREADY_INITIALIZED (the module's correct answer), every other
# call CKR_OK, and every thread that asks for token info must get it.
# One invocation with three threads: pkcs11-tool's clean-up sleeps 30 s when a thread is
# still running as the main thread gets there (a race inside pkcs11-tool, not the module), so
# each invocation may cost 30 s.
for threads in "IN ILGISLT0 INGIGISLT1"; do
    args=()
    for t in $threads; do args+=(--test-threads "$t"); done
    p11 "${args[@]}" -L >"$work/threads" 2>&1
    rc=$?
    n=$(echo "$threads" | wc -w)
    # pkcs11-tool prints every thread's state at clean-up (again after waiting for late ones):
    # the last line per thread must say it ended (state -1) with an acceptable rv.
    ended=$(awk '/^test_threads thread:/ { split($2, t, ":"); last[t[2]] = $3 " " $4 }
        END { n = 0; for (i in last) if (last[i] ~ /^state:-1, rv:(CKR_OK|CKR_CRYPTOKI_ALREADY_INITIALIZED)$/) n++; print n }' \
        "$work/threads")
    infos=$(grep -c "C_GetTokenInfo from slot_index" "$work/threads")
    want_infos=$(echo "$threads" | grep -o "T[0-9]" | wc -l)
    if [ $rc = 0 ] && [ "$ended" = "$n" ] && [ "$infos" = "$want_infos" ] \
        && ! grep -q "slot not available\|Unknown test" "$work/threads" \
        && [ -z "$(grep "returned CKR_" "$work/threads" | grep -v "C_Initialize" | grep -v "returned CKR_OK$")" ]; then
        ok "--test-threads $threads: $n thread(s) ended OK ($infos token info call(s))"
    else
        not_ok "--test-threads $threads (rc $rc, $ended/$n threads OK, $infos/$want_infos token infos)"
        sed 's/^/    /' "$work/threads" | head -30
    fi
done

# ----- PIN counter: a wrong PIN shows in -T, the right one restores it ------------------------
for t in "${tokens[@]}"; do
    read -r slot pin id name <<<"$t"
    wrong=9999; [ "$name" = sign ] && wrong=WRONG9
    p11 --slot "$slot" --login --pin "$wrong" -O >"$work/out" 2>&1
    has "$name token: wrong PIN refused (CKR_PIN_INCORRECT)" "CKR_PIN_INCORRECT" "$work/out"
    p11 --slot "$slot" -T >"$work/T" 2>&1
    has "$name token: -T shows the counter low" "user PIN count low" "$work/T"
    p11 --slot "$slot" --login --pin "$pin" -O >"$work/out" 2>&1
    p11 --slot "$slot" -T >"$work/T" 2>&1
    lacks "$name token: the right PIN restores the counter" "count low" "$work/T"
done

# ----- malformed PINs never reach the card -------------------------------------------------
verify_before=$(stat_of verify_count)
apdus_before=$(stat_of apdus)
# C_Login answers CKR_PIN_INCORRECT (the specification's code, docs/conformance.md); the card
# statistics below prove that no VERIFY was sent.
for case in "0 12 CKR_PIN_INCORRECT" "0 abc! CKR_PIN_INCORRECT" "0 12345 CKR_PIN_INCORRECT" \
    "1 12 CKR_PIN_INCORRECT" "1 ABC12! CKR_PIN_INCORRECT" "1 ABCDEFGHIJKLMNOPQ CKR_PIN_INCORRECT"; do
    read -r slot bad want <<<"$case"
    p11 --slot "$slot" --login --pin "$bad" -O >"$work/out" 2>&1
    has "slot $slot: malformed PIN '$bad' refused with $want" "$want" "$work/out"
done
verify_after=$(stat_of verify_count)
malformed=$(stat_of malformed_verify_count)
if [ "$malformed" = 0 ]; then ok "card stats: malformed_verify_count 0"; else not_ok "malformed_verify_count $malformed"; fi
if [ "$verify_after" = "$verify_before" ]; then
    ok "card stats: no VERIFY sent for malformed PINs ($verify_before before and after; APDUs $apdus_before -> $(stat_of apdus), listing only)"
else
    not_ok "VERIFY count changed $verify_before -> $verify_after"
fi

check_done
