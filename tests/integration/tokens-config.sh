#!/usr/bin/env bash
# Which tokens a program sees: each documented way (README "Which tokens a program sees"),
# checked with the programs that carry it — the environment, NSS module parameters
# (`modutil -string`), p11-kit's `x-init-reserved`, the per-user and per-program file — and
# a bad value, which warns and changes nothing else. A hidden token has no slot at all.
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
export XDG_CONFIG_HOME=$tmp/xdg
mkdir -p "$XDG_CONFIG_HOME/jpki-pkcs11"

# labels PROGRAM…: the token labels the program lists, one line each, sorted.
labels() { "$@" 2>"$tmp/stderr.txt" | sed -n 's/^ *token label *: *\(JPKI [A-Za-z]*\).*/\1/p' | sort -u | tr '\n' ' '; }
list_tokens() { pkcs11-tool --module "$module" -L; }

check "default: pkcs11-tool sees both tokens" test "$(labels list_tokens)" = "JPKI Auth JPKI Sign "
check "JPKI_PKCS11_TOKENS=sign: only the signature token" \
    test "$(JPKI_PKCS11_TOKENS=sign labels list_tokens)" = "JPKI Sign "
check "JPKI_PKCS11_TOKENS=auth: only the authentication token" \
    test "$(JPKI_PKCS11_TOKENS=auth labels list_tokens)" = "JPKI Auth "
JPKI_PKCS11_TOKENS=sign pkcs11-tool --module "$module" --slot 0 --list-objects >slot0.txt 2>&1
check "a hidden token has no slot: slot id 0 is not there when only sign is shown" \
    grep -qiE "CKR_SLOT_ID_INVALID|not (be )?found|no slot" slot0.txt
JPKI_PKCS11_TOKENS=none pkcs11-tool --module "$module" -L >none.txt 2>none.err
check "JPKI_PKCS11_TOKENS=none: warning on stderr, both tokens shown" \
    bash -c 'grep -q "JPKI Auth" none.txt && grep -q "JPKI Sign" none.txt && grep -q "warning: JPKI_PKCS11_TOKENS" none.err'

# The configuration file: a section per program (pkcs11-tool's executable name).
printf '# test\ntokens = all\n[pkcs11-tool]\ntokens = auth\n' >"$XDG_CONFIG_HOME/jpki-pkcs11/config"
check "config file [pkcs11-tool] tokens = auth" test "$(labels list_tokens)" = "JPKI Auth "
check "the environment wins over the file" test "$(JPKI_PKCS11_TOKENS=sign labels list_tokens)" = "JPKI Sign "
printf 'tokens = sign\npin = 1234\n' >"$XDG_CONFIG_HOME/jpki-pkcs11/config"
check "config file top-level tokens = sign" test "$(labels list_tokens)" = "JPKI Sign "
check "a 'pin' line is refused with a warning that does not repeat its value" \
    bash -c 'grep -q "never takes a PIN" '"$tmp"'/stderr.txt && ! grep -q 1234 '"$tmp"'/stderr.txt'
rm "$XDG_CONFIG_HOME/jpki-pkcs11/config"

# NSS: the module parameter string of one registration (modutil -string → parameters=).
db=$tmp/nssdb
mkdir -p "$db"
certutil -N -d "sql:$db" --empty-password
modutil -dbdir "sql:$db" -add jpki-sign -libfile "$module" -string "tokens=sign" -force >/dev/null 2>&1
check "modutil -string stores parameters=tokens=sign" grep -q 'parameters=.*tokens=sign' "$db/pkcs11.txt"
modutil -dbdir "sql:$db" -list jpki-sign >list.txt 2>&1
check "NSS (modutil -list): the registration shows only the signature token" \
    bash -c 'grep -q "Token Name: JPKI Sign" list.txt && ! grep -q "JPKI Auth" list.txt'
certutil -L -d "sql:$db" -h all >certs.txt 2>&1
check "certutil -h all: signature token's certificates, none of the authentication token" \
    bash -c 'grep -q "JPKI Sign" certs.txt && ! grep -q "JPKI Auth" certs.txt'
# (A second registration of the same library file in the same database shares the first's
# parameters: NSS loads one library once. So the bad value gets its own database.)
bad=$tmp/nssdb-bad
mkdir -p "$bad"
certutil -N -d "sql:$bad" --empty-password
modutil -dbdir "sql:$bad" -add jpki-bad -libfile "$module" -string "tokens=maybe" -force >/dev/null 2>&1
modutil -dbdir "sql:$bad" -list jpki-bad >bad.txt 2>&1
check "NSS with parameters=tokens=maybe: warning, the module still loads with both tokens" \
    bash -c 'grep -q "Token Name: JPKI Auth" bad.txt && grep -q "Token Name: JPKI Sign" bad.txt && grep -q "warning: module parameters" bad.txt'

# p11-kit: x-init-reserved in a module file. p11-kit ignores user files for root, so the
# module file goes into the system directory, bind-mounted in a private mount namespace.
mkdir -p modules
printf 'module: %s\nx-init-reserved: tokens=auth\n' "$module" >modules/jpki-auth.module
unshare -m --propagation private bash -c \
    'mount --bind modules /usr/share/p11-kit/modules && p11-kit list-modules' >p11kit.txt 2>&1
check "p11-kit x-init-reserved: tokens=auth shows only the authentication token" \
    bash -c 'grep -q "jpki-auth" p11kit.txt && grep -q "token: JPKI Auth" p11kit.txt && ! grep -q "JPKI Sign" p11kit.txt'

# jpki doctor shows what each known program sees (binary: $JPKI_CLI, else the newer build).
cli=${JPKI_CLI:-}
if [ -z "$cli" ]; then
    for c in "$root/target/release/jpki" "$root/target/debug/jpki"; do
        if [ -x "$c" ] && { [ -z "$cli" ] || [ "$c" -nt "$cli" ]; }; then cli=$c; fi
    done
fi
if [ -n "$cli" ]; then
    printf '[ssh]\ntokens = auth\n' >"$XDG_CONFIG_HOME/jpki-pkcs11/config"
    "$cli" doctor >doctor.txt 2>&1
    check "jpki doctor: pdfsig sees the signature token (built-in default)" \
        grep -q "pdfsig sees token(s): sign (built-in default for this program)" doctor.txt
    check "jpki doctor: ssh sees the authentication token (from the user's file)" \
        grep -q "ssh sees token(s): auth ($XDG_CONFIG_HOME/jpki-pkcs11/config)" doctor.txt
    check "jpki doctor: firefox-esr sees all tokens" grep -q "firefox-esr sees token(s): all (default)" doctor.txt
    rm "$XDG_CONFIG_HOME/jpki-pkcs11/config"
else
    not_ok "jpki binary not built (cargo build)"
fi

check_no_pin_harm 3 5
check_done
