#!/usr/bin/env bash
# Log in to this machine with the card: pam_p11 (Debian libpam-p11) and the authentication key,
# driven by pamtester, with the PAM lines and the authorized_keys step of the README
# ("Log in and sudo with the card"):
#   - the right 4-digit PIN logs in;
#   - a wrong PIN fails and costs exactly one try;
#   - a malformed PIN (5 digits, letters) fails and costs nothing: it never reaches the card;
#   - a card whose key is not in the user's authorized_keys is refused.
# The user, its home and the PAM service exist only inside a private mount namespace: /etc/passwd,
# /etc/group and /etc/pam.d are bind-mounted copies, so the machine is not changed.
#
# Runs inside tests/harness/with-card.sh (as root: pam_p11 and pamtester need no setuid here).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
command -v pamtester >/dev/null || { echo "pamtester missing" >&2; exit 2; }
pam_p11=$(ls /lib/x86_64-linux-gnu/security/pam_p11.so /usr/lib/x86_64-linux-gnu/security/pam_p11.so 2>/dev/null | head -n 1)
[ -n "$pam_p11" ] || { echo "libpam-p11 missing" >&2; exit 2; }
chmod 755 "$tmp"

user=jpkiuser
home=$tmp/home
mkdir -p "$home/.ssh" etc/pam.d
cp /etc/passwd etc/passwd; cp /etc/group etc/group
echo "$user:x:4242:4242:JPKI test user:$home:/bin/sh" >>etc/passwd
echo "$user:x:4242:" >>etc/group
# The PAM service, as the README shows it (only the module path differs).
cat >etc/pam.d/jpki-login <<PAM
auth    required    pam_p11.so $module
account required    pam_permit.so
PAM

# The authorized_keys step (README): the card's authentication key, as OpenSSH prints it.
ssh-keygen -D "$module" 2>/dev/null | grep 'JPKI User Authentication$' >card.pub
check "ssh-keygen -D: the card's authentication key" test -s card.pub

# pam USER PIN: pamtester authenticate in the private namespace; the PIN is typed on stdin.
pam() {
    printf '%s\n' "$2" | unshare -m --propagation private bash -c '
        mount --bind etc/passwd /etc/passwd && mount --bind etc/group /etc/group &&
        mount --bind etc/pam.d /etc/pam.d && exec pamtester -v jpki-login "$1" authenticate' _ "$1"
}

install_keys() { cp "$1" "$home/.ssh/authorized_keys"; chown -R 4242:4242 "$home"; chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"; }

# 1. A card that is not the user's: authorized_keys holds another key.
ssh-keygen -q -t rsa -b 2048 -N '' -f other >/dev/null
install_keys other.pub
t0=$(tries auth)
pam "$user" "$auth_pin" >other.txt 2>&1
check "a card that is not the user's is refused" bash -c '! grep -q "successfully authenticated" other.txt'
t1=$(tries auth)
check "refusing it cost no try (pam_p11 asks no PIN: 'No authorized keys on token')" \
    bash -c "[ $t1 -eq $t0 ] && grep -q 'No authorized keys on token' other.txt"

install_keys card.pub
# 2. The right PIN.
v0=$(card_stat verify_count)
pam "$user" "$auth_pin" >right.txt 2>&1
check "pamtester: the right PIN logs in" grep -q "successfully authenticated" right.txt
check "one VERIFY for the log-in" test "$(card_stat verify_count)" -eq $((v0 + 1))

# 3. A wrong PIN: one try.
pam "$user" 4321 >wrong.txt 2>&1
check "pamtester: a wrong PIN is refused" bash -c '! grep -q "successfully authenticated" wrong.txt'
check "the wrong PIN cost exactly one try (3 -> 2)" test "$(tries auth)" -eq 2

# 4. Malformed PINs: nothing reaches the card.
for bad in 12345 12ab; do
    v0=$(card_stat verify_count)
    pam "$user" "$bad" >bad.txt 2>&1
    check "malformed PIN '$bad' is refused" bash -c '! grep -q "successfully authenticated" bad.txt'
    check "malformed PIN '$bad' never reached the card (no VERIFY)" test "$(card_stat verify_count)" -eq "$v0"
done
check "tries still 2 after the malformed PINs" test "$(tries auth)" -eq 2

# 5. The right PIN again resets the counter.
pam "$user" "$auth_pin" >right2.txt 2>&1
check "the right PIN logs in again (counter back to 3)" \
    bash -c "grep -q 'successfully authenticated' right2.txt && [ $(tries auth) -eq 3 ]"
check "the signature password was never touched" test "$(tries sign)" -eq 5
check_no_pin_harm 3 5
check_done
