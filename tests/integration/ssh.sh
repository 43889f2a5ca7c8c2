#!/usr/bin/env bash
# OpenSSH against the module: key listing, a real login to a private sshd with the card's
# authentication key (rsa-sha2-256 and rsa-sha2-512), and ssh-agent with `ssh-add -s`.
#
# Runs inside tests/harness/with-card.sh (private network namespace: sshd binds 127.0.0.1).
# The PIN reaches OpenSSH the way a person gives it: through an SSH_ASKPASS program, with no
# terminal (setsid), exactly as a desktop session would. The module gets no PIN any other way.
#
# Note on CA certificates: OpenSSH also turns every CKO_CERTIFICATE into a key, so
# `ssh-keygen -D` and `ssh-add -l` list the two JPKI CA keys besides the authentication key.
# The module keeps the CA certificates (NSS, Java and pyHanko build chains from them); those CA
# "identities" have no private key on the token, so no server can accept them, and only the
# line labelled "JPKI User Authentication" belongs in authorized_keys. This suite checks that.
#
# The phone token (profile phone, docs/phone-token.md) shows its authentication key only after
# the PIN. OpenSSH logs in only where it is given a PIN up front (`ssh-add -s`); `ssh-keygen -D`
# and `ssh` with PKCS11Provider look for keys before any login, so there they find only the CA
# "keys". There the suite checks that, and the way a phone user must go: `ssh-add -s` into
# ssh-agent (PIN through SSH_ASKPASS), the key exported with `ssh-add -L`, and `ssh` signing
# through the agent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/check.bash"

: "${JPKI_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${JPKI_MODULE:=$JPKI_ROOT/target/release/libjpki_pkcs11.so}"
: "${JPKI_VC:=${JPKI_TEST_CARD_BIN:-$JPKI_ROOT/target/debug/jpki-virtual-card}}"
[ "${JPKI_PCSC_TEST:-}" = 1 ] || { echo "ssh.sh: run me inside tests/harness/with-card.sh" >&2; exit 2; }
[ -r "$JPKI_MODULE" ] || { echo "ssh.sh: module $JPKI_MODULE not found" >&2; exit 2; }
phone=0; [ "${JPKI_TEST_PROFILE:-}" = phone ] && phone=1
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd_bin" ] || { echo "ssh.sh: sshd missing (apt-get install openssh-server)" >&2; exit 2; }
module=$(realpath "$JPKI_MODULE")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jpki-ssh.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT INT TERM

ctl() { "$JPKI_VC" ctl --control "$JPKI_TEST_CONTROL" "$@"; }
stat_field() { # stat_field NAME -> number from `ctl stats`
    ctl stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
tries() { # tries auth|sign -> tries left from `ctl status`
    ctl status | sed -n "s/.*$1_tries_left=\([0-9]*\).*/\1/p"
}
# Signing commands the card received: the Lc byte of each `80 2A 00 80` (COMPUTE DIGITAL
# SIGNATURE) in the APDU log, i.e. the DigestInfo length OpenSSH built (51 = SHA-256, 83 = SHA-512).
# COMPUTE DIGITAL SIGNATURE P1=00 with P2 = 80 (current EF) or 80|SFI (97, 9A: the key named).
sign_lcs() { awk 'tolower($2) ~ /^802a00(80|97|9a)/ { print substr($2, 9, 2) }' "$JPKI_TEST_APDU_LOG" | tr '\n' ' '; }

# The PIN comes from an askpass program, as from a desktop's dialog.
cat > "$tmp/askpass" <<'SH'
#!/bin/sh
echo "$*" >> "${0%/*}/askpass.log"
echo 1234
SH
chmod +x "$tmp/askpass"
askpass_env=(env SSH_ASKPASS="$tmp/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0)

# --- 1. ssh-keygen -D: the authentication key, without a PIN --------------------------------
"$JPKI_VC" export --state "$JPKI_TEST_STATE" --out "$tmp/certs" >/dev/null
openssl x509 -in "$tmp/certs/auth_cert.pem" -noout -pubkey > "$tmp/auth.pub.pem"
expected=$(ssh-keygen -i -m PKCS8 -f "$tmp/auth.pub.pem" | awk '{print $2}')
auth_ca=$(openssl x509 -in "$tmp/certs/auth_ca_cert.pem" -noout -pubkey | ssh-keygen -i -m PKCS8 -f /dev/stdin | awk '{print $2}')
sign_ca=$(openssl x509 -in "$tmp/certs/sign_ca_cert.pem" -noout -pubkey | ssh-keygen -i -m PKCS8 -f /dev/stdin | awk '{print $2}')
sign_key=$(openssl x509 -in "$tmp/certs/sign_cert.pem" -noout -pubkey | ssh-keygen -i -m PKCS8 -f /dev/stdin | awk '{print $2}')

setsid -w "${askpass_env[@]}" ssh-keygen -D "$module" > "$tmp/keygen.out" 2> "$tmp/keygen.err" </dev/null
if [ "$phone" = 0 ]; then
    check "ssh-keygen -D lists the authentication key under its label" \
        grep -qx "ssh-rsa $expected JPKI User Authentication" "$tmp/keygen.out"
else
    check "ssh-keygen -D (phone) does not find the authentication key (private before login)" \
        bash -c "! grep -q ' $expected' '$tmp/keygen.out' && ! grep -q 'JPKI User Authentication' '$tmp/keygen.out'"
fi
check "ssh-keygen -D lists the auth CA and sign CA keys (OpenSSH turns every certificate into a key)" \
    bash -c "grep -q ' $auth_ca ' '$tmp/keygen.out' && grep -q ' $sign_ca ' '$tmp/keygen.out'"
check "ssh-keygen -D does not show the signature key (private before login)" \
    bash -c "! grep -q ' $sign_key' '$tmp/keygen.out'"
nkeys=$((3 - phone))
check "ssh-keygen -D lists exactly $nkeys keys" test "$(wc -l < "$tmp/keygen.out")" -eq "$nkeys"
check "ssh-keygen -D asked for no PIN" test ! -e "$tmp/askpass.log"
check "ssh-keygen -D sent no VERIFY" test "$(stat_field verify_count)" -eq 0

# --- 2. a private sshd on 127.0.0.1 -----------------------------------------------------------
port=$((20000 + RANDOM % 20000))
mkdir -p /run/sshd && chmod 0755 /run/sshd     # privilege separation dir (private /run)
ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey"
cat > "$tmp/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $tmp/hostkey
PidFile $tmp/sshd.pid
AuthorizedKeysFile $tmp/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAcceptedAlgorithms rsa-sha2-256,rsa-sha2-512
LogLevel DEBUG1
CONF
"$sshd_bin" -t -f "$tmp/sshd_config"
"$sshd_bin" -D -e -f "$tmp/sshd_config" 2> "$tmp/sshd.log" &
pids+=("$!")
for _ in $(seq 1 100); do
    grep -q "Server listening on 127.0.0.1 port $port" "$tmp/sshd.log" 2>/dev/null && break
    sleep 0.05
done
check "sshd listens on 127.0.0.1:$port" grep -q "Server listening on 127.0.0.1 port $port" "$tmp/sshd.log"

# The client side as a user would configure it (README "Installing for real", ssh):
# PKCS11Provider plus the card key's public half as IdentityFile with IdentitiesOnly, so that
# only the authentication key is offered (not the CA "keys", see the top of this file).
# (README: `ssh-keygen -D MODULE | grep 'JPKI User Authentication$' > ~/.ssh/jpki_auth.pub`)
# On the phone that finds nothing (section 1): there the phone user exports the key from the
# agent after `ssh-add -s` (section 4), and the server already holds it in authorized_keys.
if [ "$phone" = 0 ]; then
    ssh-keygen -D "$module" 2>/dev/null | grep 'JPKI User Authentication$' > "$tmp/jpki_auth.pub"
    check "jpki_auth.pub holds the authentication key only" \
        test "$(cat "$tmp/jpki_auth.pub")" = "ssh-rsa $expected JPKI User Authentication"
    cp "$tmp/jpki_auth.pub" "$tmp/authorized_keys"
else
    echo "ssh-rsa $expected JPKI User Authentication" > "$tmp/authorized_keys"
fi
cat > "$tmp/ssh_config" <<CONF
Host card-test
    HostName 127.0.0.1
    Port $port
    User root
    PKCS11Provider $module
    IdentityFile $tmp/jpki_auth.pub
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ConnectTimeout 10
    LogLevel ERROR
CONF
accepted() { grep -c "Accepted publickey for root from 127.0.0.1" "$tmp/sshd.log" || true; }

# --- 3. ssh with PKCS11Provider: login with the card, PIN through SSH_ASKPASS ----------------
if [ "$phone" = 1 ]; then
    # ssh loads the module with no PIN and looks for keys before any login: on the phone it
    # finds only the CA "keys", offers them (the server refuses them) and never asks a PIN.
    auth_fp=$(ssh-keygen -lf "$tmp/authorized_keys" | awk '{print $2}')
    rm -f "$tmp/askpass.log"
    sigs_before=$(stat_field signatures)
    acc_before=$(accepted)
    if setsid -w "${askpass_env[@]}" timeout 60 ssh -v -I "$module" -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o PasswordAuthentication=no \
            -o KbdInteractiveAuthentication=no -o PubkeyAcceptedAlgorithms=rsa-sha2-256 \
            -p "$port" root@127.0.0.1 true </dev/null 2> "$tmp/ssh-phone.err"; then
        not_ok "ssh -I MODULE (phone): cannot log in before any login to the token (it logged in)"
    else
        ok "ssh -I MODULE (phone): cannot log in, the authentication key is private before login"
    fi
    check "ssh -I MODULE (phone): offered the CA keys only, never the authentication key" \
        bash -c "grep -q '^debug1: Offering public key' '$tmp/ssh-phone.err' && ! grep -q '$auth_fp' '$tmp/ssh-phone.err'"
    check "ssh -I MODULE (phone): asked no PIN" test ! -e "$tmp/askpass.log"
    check "ssh -I MODULE (phone): no signature" test "$(stat_field signatures)" -eq "$sigs_before"
    check "ssh -I MODULE (phone): sshd accepted nothing" test "$(accepted)" -eq "$acc_before"
fi
for alg in rsa-sha2-256 rsa-sha2-512; do
    [ "$phone" = 1 ] && break
    rm -f "$tmp/askpass.log"
    sigs_before=$(stat_field signatures)
    lcs_before=$(sign_lcs)
    acc_before=$(accepted)
    if out=$(setsid -w "${askpass_env[@]}" timeout 60 ssh -F "$tmp/ssh_config" -v \
            -o PubkeyAcceptedAlgorithms="$alg" card-test 'echo logged-in-as-$(id -un)' \
            </dev/null 2> "$tmp/ssh-$alg.err"); then
        check "ssh (PKCS11Provider) logs in with $alg" test "$out" = "logged-in-as-root"
    else
        not_ok "ssh (PKCS11Provider) logs in with $alg ($(grep -v '^debug' "$tmp/ssh-$alg.err" | tail -3 | tr '\n' ' '))"
    fi
    check "ssh ($alg): only the authentication key was offered" \
        test "$(grep -c '^debug1: Offering public key' "$tmp/ssh-$alg.err")" -eq 1
    check "ssh ($alg): askpass asked once, for the auth token's PIN" \
        bash -c "test \$(wc -l < '$tmp/askpass.log' 2>/dev/null || echo 0) -eq 1 && grep -q 'JPKI Auth' '$tmp/askpass.log'"
    check "ssh ($alg): the card made one signature" \
        test "$(stat_field signatures)" -eq $((sigs_before + 1))
    lcs_new=$(sign_lcs); lcs_new=${lcs_new#"$lcs_before"}
    want=$([ "$alg" = rsa-sha2-256 ] && echo "33 " || echo "53 ")
    check "ssh ($alg): the card signed a $(( 16#${want% } ))-byte DigestInfo" test "$lcs_new" = "$want"
    check "sshd accepted the card key ($alg)" test "$(accepted)" -eq $((acc_before + 1))
done

# ssh -I on the command line, as the issue names it (same key, same server).
rm -f "$tmp/askpass.log"
if [ "$phone" = 1 ]; then
    : # shown above: on the phone ssh -I finds no authentication key
elif out=$(setsid -w "${askpass_env[@]}" timeout 60 ssh -I "$module" -i "$tmp/jpki_auth.pub" \
        -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o LogLevel=ERROR \
        -o PubkeyAcceptedAlgorithms=rsa-sha2-256 -p "$port" root@127.0.0.1 'echo dash-I' \
        </dev/null 2> "$tmp/ssh-I.err"); then
    check "ssh -I MODULE -i jpki_auth.pub logs in" test "$out" = "dash-I"
else
    not_ok "ssh -I MODULE -i jpki_auth.pub logs in ($(tail -3 "$tmp/ssh-I.err" | tr '\n' ' '))"
fi

# OpenSSH's own rule, shown here so that nobody "fixes" the module for it: with
# IdentitiesOnly=yes, PKCS#11 keys are used only if also named by IdentityFile
# (sshconnect2.c pubkey_prepare). Without it nothing is offered, and no PIN is asked.
rm -f "$tmp/askpass.log"
sigs_before=$(stat_field signatures)
if setsid -w "${askpass_env[@]}" timeout 60 ssh -I "$module" -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PasswordAuthentication=no \
        -o KbdInteractiveAuthentication=no -o LogLevel=ERROR -p "$port" root@127.0.0.1 true \
        </dev/null 2> "$tmp/ssh-noid.err"; then
    not_ok "OpenSSH: IdentitiesOnly=yes without IdentityFile offers no card key (it logged in)"
else
    check "OpenSSH: IdentitiesOnly=yes without IdentityFile asks no PIN" test ! -e "$tmp/askpass.log"
    check "OpenSSH: IdentitiesOnly=yes without IdentityFile makes no signature" \
        test "$(stat_field signatures)" -eq "$sigs_before"
fi

# --- 4. ssh-agent + ssh-add -s -------------------------------------------------------------------
# ssh-add -s asks ONE PIN and offers it to every token that needs a login (docs/client-behaviour.md, "OpenSSH").
# The signature token must refuse "1234" locally (4 characters < 6): no VERIFY for it, no try lost.
verify_before=$(stat_field verify_count)
# ssh-agent loads PKCS#11 modules only from its allowlist (default /usr/lib*/*,/usr/local/lib*/*):
# the installed package needs nothing, a build tree needs -P.
case "$module" in
    /usr/lib*/*|/usr/local/lib*/*) agent_allow=() ;;
    *) agent_allow=(-P "$module") ;;
esac
ssh-agent -d -a "$tmp/agent.sock" "${agent_allow[@]}" > "$tmp/agent.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do [ -S "$tmp/agent.sock" ] && break; sleep 0.05; done
export SSH_AUTH_SOCK=$tmp/agent.sock
rm -f "$tmp/askpass.log"
if setsid -w "${askpass_env[@]}" ssh-add -s "$module" </dev/null > "$tmp/ssh-add.out" 2>&1; then
    ok "ssh-add -s loads the module into ssh-agent"
else
    not_ok "ssh-add -s loads the module into ssh-agent ($(tr '\n' ' ' < "$tmp/ssh-add.out"))"
fi
check "ssh-add -s asked for the PIN once" test "$(wc -l < "$tmp/askpass.log" 2>/dev/null || echo 0)" -eq 1
ssh-add -L > "$tmp/agent-keys" 2>&1 || true
check "ssh-add -L shows the authentication key" grep -q "^ssh-rsa $expected" "$tmp/agent-keys"
if [ "$phone" = 1 ]; then
    # The phone user's export (README, OpenSSH): after the login, from the agent.
    grep 'JPKI User Authentication$' "$tmp/agent-keys" > "$tmp/jpki_auth.pub" || true
    check "ssh-add -L (phone): jpki_auth.pub holds the authentication key only" \
        test "$(cat "$tmp/jpki_auth.pub")" = "ssh-rsa $expected JPKI User Authentication"
fi
check "ssh-add -l lists the card's key with its fingerprint" \
    bash -c "ssh-add -l | grep -q \"\$(ssh-keygen -lf '$tmp/authorized_keys' | awk '{print \$2}')\""
check "ssh-add -s: exactly one VERIFY reached the card (auth PIN only)" \
    test "$(stat_field verify_count)" -eq $((verify_before + 1))
check "ssh-add -s: no malformed PIN reached the card" test "$(stat_field malformed_verify_count)" -eq 0
# ssh-agent -d logs what its PKCS#11 helper saw: the signature token's C_Login returned 160
# (CKR_PIN_INCORRECT, docs/conformance.md), i.e. OpenSSH did offer it the PIN and the module
# refused it locally (the VERIFY count above: only the auth PIN reached the card).
check "ssh-add -s: the signature token answered C_Login with CKR_PIN_INCORRECT (160), once" \
    test "$(grep -c 'C_Login failed' "$tmp/agent.log")" -eq 1 -a "$(tr -d '\r' < "$tmp/agent.log" | grep -c 'C_Login failed: 160$')" -eq 1
check "ssh-add -s: the signature password still has 5 tries" test "$(tries sign)" -eq 5
check "ssh-add -s: the auth PIN still has 3 tries" test "$(tries auth)" -eq 3

for alg in rsa-sha2-256 rsa-sha2-512; do
    rm -f "$tmp/askpass.log"
    sigs_before=$(stat_field signatures)
    acc_before=$(accepted)
    if out=$(setsid -w "${askpass_env[@]}" timeout 60 ssh -F "$tmp/ssh_config" -o PKCS11Provider=none \
            -o PubkeyAcceptedAlgorithms="$alg" card-test 'echo agent-login' \
            </dev/null 2> "$tmp/ssh-agent-$alg.err"); then
        check "login through ssh-agent with $alg" test "$out" = "agent-login"
    else
        not_ok "login through ssh-agent with $alg ($(tail -3 "$tmp/ssh-agent-$alg.err" | tr '\n' ' '))"
    fi
    check "agent login ($alg): no PIN asked again" test ! -e "$tmp/askpass.log"
    check "agent login ($alg): the card made one signature" \
        test "$(stat_field signatures)" -eq $((sigs_before + 1))
    check "sshd accepted the card key through the agent ($alg)" test "$(accepted)" -eq $((acc_before + 1))
done
check "ssh-add -e unloads the module" bash -c "ssh-add -e '$module' >/dev/null 2>&1"
check "after ssh-add -e the agent holds no card key" bash -c "! ssh-add -L 2>/dev/null | grep -q '$expected'"
check "whole suite: no malformed PIN ever reached the card" test "$(stat_field malformed_verify_count)" -eq 0
check "whole suite: no failed VERIFY" test "$(stat_field failed_verify_count)" -eq 0

if [ "$check_failed" -ne 0 ]; then echo "ssh.sh: logs kept in $tmp.keep" >&2; cp -r "$tmp" "$tmp.keep"; fi
check_done
