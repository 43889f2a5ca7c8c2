#!/usr/bin/env bash
# gpgsm and git with the card's signature key through gnupg-pkcs11-scd (the scdaemon that speaks
# PKCS#11): gpgsm learns the card, signs and verifies; git commit -S with gpg.format=x509 signs a
# commit and git verify-commit accepts it. The PIN comes from a pinentry this test provides
# (tests/integration/lib/pinentry-test.sh), which records every prompt.
#
# gnupg-pkcs11-scd is given only the signature token by the module's configuration file, a
# [gnupg-pkcs11-scd] section (README "Which tokens a program sees"), so it asks one PIN: the
# signature password.
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
for c in gpgsm gpg-agent gnupg-pkcs11-scd git; do
    command -v "$c" >/dev/null || { echo "$c missing" >&2; exit 2; }
done

export GNUPGHOME=$tmp/gnupg
export XDG_CONFIG_HOME=$tmp/config
mkdir -p "$GNUPGHOME" "$XDG_CONFIG_HOME/jpki-pkcs11"
chmod 700 "$GNUPGHOME"
printf '[gnupg-pkcs11-scd]\ntokens = sign\n' >"$XDG_CONFIG_HOME/jpki-pkcs11/config"
export PINENTRY_TEST_LOG=$tmp/pinentry.log PINENTRY_TEST_PIN=$sign_pw
cat >"$GNUPGHOME/gpg-agent.conf" <<CONF
scdaemon-program $(command -v gnupg-pkcs11-scd)
pinentry-program $here/lib/pinentry-test.sh
CONF
cat >"$GNUPGHOME/gnupg-pkcs11-scd.conf" <<CONF
providers jpki
provider-jpki-library $module
provider-jpki-cert-private
CONF
# No network here: no CRL or OCSP fetching. JPKI certificates mark certificatePolicies critical.
printf 'disable-crl-checks\ndisable-policy-checks\n' >"$GNUPGHOME/gpgsm.conf"
# Stop this GNUPGHOME's agent and scdaemon, then clients.bash's cleanup (keeps the exit status).
cleanup_agent() { local rc=$?; gpgconf --kill all 2>/dev/null; (exit $rc); cleanup; }
trap cleanup_agent EXIT

"$vc" export --state "$JPKI_TEST_STATE" --out card >/dev/null
# Trust the JPKI signature CA (its fingerprint in trustlist.txt, as gpgsm documents).
gpgsm --batch --import card/sign_ca_cert.pem >import.txt 2>&1
fpr=$(openssl x509 -in card/sign_ca_cert.pem -noout -fingerprint -sha1 | sed 's/.*=//')
echo "$fpr S relax" >"$GNUPGHOME/trustlist.txt"

# The signature certificate is private until the signature password is given, so learning logs
# in. `gpgsm --learn-card` cannot answer gnupg-pkcs11-scd's PIN inquiry ("No inquire callback in
# IPC"); through gpg-connect-agent the agent asks the pinentry itself. Then gpgsm learns.
gpg-connect-agent "SCD LEARN --force" /bye >scdlearn.txt 2>&1
check "SCD LEARN through the agent: the signature key pair is found" grep -q "KEYPAIRINFO" scdlearn.txt
gpgsm --batch --learn-card >learn.txt 2>&1
check "gpgsm --learn-card: the signature certificate is learned" \
    bash -c 'gpgsm --list-secret-keys 2>/dev/null | grep -q "Kiyose-shi"'
id=$(gpgsm --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
check "a secret (card) key is listed: $id" test -n "$id"

printf 'a document\n' >doc.txt
s0=$(card_stat signatures)
if gpgsm --batch -u "$id" --detach-sign -o doc.sig doc.txt >sign.txt 2>&1; then
    ok "gpgsm --detach-sign with the card"
else
    show sign.txt; show learn.txt; not_ok "gpgsm --detach-sign with the card"
fi
check "the card made one signature" test "$(card_stat signatures)" -eq $((s0 + 1))
gpgsm --batch --verify doc.sig doc.txt >verify.txt 2>&1
check "gpgsm --verify: Good signature" grep -q "Good signature" verify.txt

# git: a commit signed with the card.
git init -q repo
cd repo
git config user.name "Kiyose Taro"
git config user.email "taro@example.jp"
git config gpg.format x509
git config gpg.x509.program gpgsm
git config user.signingkey "$id"
echo hello >file.txt
git add file.txt
s1=$(card_stat signatures)
if git commit -q -S -m "signed with the My Number Card" >commit.txt 2>&1; then
    ok "git commit -S (gpg.format=x509) signs"
else
    show commit.txt; not_ok "git commit -S (gpg.format=x509) signs"
fi
check "the card made the commit's signature" test "$(card_stat signatures)" -eq $((s1 + 1))
check "git verify-commit accepts it" git verify-commit HEAD
cd ..

prompts=$(grep -c GETPIN pinentry.log 2>/dev/null || echo 0)
check "the pinentry asked for the signature password only (prompts: $prompts)" \
    bash -c '[ '"$prompts"' -ge 1 ] && ! grep -q "JPKI Auth" pinentry.log'
check_no_pin_harm 3 5
check_done
