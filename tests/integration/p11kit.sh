#!/usr/bin/env bash
# p11-kit and GnuTLS: the p11-kit module file of packaging/ (as the Debian package installs it),
# a per-user module config, p11tool (--list-tokens, --list-all-certs, --test-sign), and
# forwarding a token to another process: `p11-kit server` + p11-kit-client.so, and a
# `remote: |p11-kit remote MODULE` module config. Runs inside tests/harness/with-card.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/clients.bash"

# p11-kit's directories (Debian): modules in /usr/lib/<multiarch>/pkcs11, where the package
# p11-kit-modules also puts p11-kit-client.so; package module configs in /usr/share/p11-kit/modules.
client_so=$(dpkg -L p11-kit-modules | grep '/pkcs11/p11-kit-client\.so$' | head -n 1)
proxy_so=$(dpkg -L p11-kit-modules | grep '/p11-kit-proxy\.so$' | head -n 1)
module_dir=$(dirname "$client_so")
config_dir=/usr/share/p11-kit/modules
[ -f "$client_so" ] && [ -f "$proxy_so" ] || fail "p11-kit-modules installed"
printf 'A message signed through p11-kit.\n' >"$w/msg"
export_cert "$auth_token" 01 "$w/auth.pem"
openssl x509 -in "$w/auth.pem" -pubkey -noout >"$w/auth.pub"
sigs() { card_stat signatures; }

# --- the packaged module file -------------------------------------------------------------------
# In a private mount namespace, the module directory holds only libjpki_pkcs11.so (a copy of the
# module under test: a link could point into the directory it hides, when the module under test
# is the installed one) and the config directory only packaging/jpki-pkcs11.module, unchanged:
# this is what p11-kit sees once the Debian package is installed.
mkdir "$w/pkg-modules" "$w/pkg-configs"
cp "$module" "$w/pkg-modules/libjpki_pkcs11.so"
cp "$root/packaging/jpki-pkcs11.module" "$w/pkg-configs/"
cat >"$w/packaged.sh" <<EOF
set -e
mount --bind "$w/pkg-modules" "$module_dir"
mount --bind "$w/pkg-configs" "$config_dir"
p11-kit list-modules >"$w/packaged-list" 2>&1
pkcs11-tool --module "$proxy_so" -L >"$w/proxy-slots" 2>&1
pkcs11-tool --module "$proxy_so" --token-label "$auth_token" --login --pin 1234 \\
    -s -m SHA256-RSA-PKCS --id 01 -i "$w/msg" -o "$w/proxy.sig" >"$w/proxy-sign" 2>&1
EOF
into "$w/packaged.log" unshare --mount --propagation private bash "$w/packaged.sh" \
    || fail "p11-kit with the packaged module file (private mount namespace)"
check "packaging/jpki-pkcs11.module: p11-kit list-modules loads libjpki_pkcs11.so from its module dir" \
    has "$w/packaged-list" '^jpki-pkcs11: libjpki_pkcs11\.so$'
check "... and shows the authentication token" has "$w/packaged-list" "^ +token: $auth_token\$"
check "... and the signature token" has "$w/packaged-list" "^ +token: $sign_token\$"
check "p11-kit-proxy.so (what NSS or OpenSSL users load) shows the tokens" \
    has "$w/proxy-slots" "token label *: $auth_token"
check "... and signs through it (verified with the certificate)" \
    into "$w/proxy.verify" openssl dgst -sha256 -verify "$w/auth.pub" -signature "$w/proxy.sig" "$w/msg"

# --- a per-user module config -------------------------------------------------------------------
# p11-kit reads ~/.config/pkcs11 only when not root ("skipping user config in program running as
# root"), so these run in a user namespace as an unprivileged uid; pcscd still sees root.
user_config() { # user_config HOME: a home where the system's OpenSC module (it drives JPKI
    # cards too) and an installed jpki-pkcs11 are disabled, so that only what a test adds is seen
    local m
    mkdir -p "$1/.config/pkcs11/modules"
    for m in opensc-pkcs11 jpki-pkcs11; do
        printf 'module: %s.so\nenable-in: no-program\n' "$m" >"$1/.config/pkcs11/modules/$m.module"
    done
}
as_user() { # as_user HOME CMD...
    local home=$1; shift
    HOME=$home timed unshare --user -- "$@"
}
user_config "$w/home"
printf 'module: %s\n' "$module" >"$w/home/.config/pkcs11/modules/jpki-pkcs11.module"
into "$w/user-list" as_user "$w/home" p11-kit list-modules || fail "p11-kit list-modules"
check "~/.config/pkcs11/modules/jpki-pkcs11.module: p11-kit list-modules shows the module" \
    has "$w/user-list" "^jpki-pkcs11: $module\$"
check "... with both tokens" \
    has_all "$w/user-list" "^ +token: $auth_token\$" "^ +token: $sign_token\$"
into "$w/user-p11tool" as_user "$w/home" p11tool --list-tokens || fail "p11tool --list-tokens"
check "... and p11tool without --provider (GnuTLS's registered modules) lists them" \
    has "$w/user-p11tool" "Label: $auth_token\$"

# --- p11tool --provider -------------------------------------------------------------------------
pt() { timed p11tool --provider "$module" "$@"; }
into "$w/tokens" pt --list-tokens || fail "p11tool --list-tokens"
check "p11tool --list-tokens shows the authentication token and its URI" \
    has "$w/tokens" "URL: pkcs11:.*token=$(uri_enc "$auth_token")\$"
check "p11tool --list-tokens shows the signature token" has "$w/tokens" "Label: $sign_token\$"
into "$w/auth-certs" pt --list-all-certs "$auth_uri" || fail "p11tool --list-all-certs (auth)"
check "p11tool --list-all-certs: authentication certificate, without login" \
    has "$w/auth-certs" "object=$(uri_enc "$auth_label");type=cert\$"
check "... and its CA certificate" has "$w/auth-certs" "object=$(uri_enc "$auth_label CA");type=cert\$"
into "$w/sign-certs" pt --list-all-certs "$sign_uri" || fail "p11tool --list-all-certs (sign)"
check "p11tool --list-all-certs on the signature token without login: its CA certificate" \
    has "$w/sign-certs" "object=$(uri_enc "$sign_label CA");type=cert\$"
check "... but not the signature certificate (personal data, private)" \
    lacks "$w/sign-certs" "object=$(uri_enc "$sign_label");type=cert\$"
into "$w/sign-certs-login" env GNUTLS_PIN=ABC123 timeout 30 p11tool --provider "$module" --login \
    --list-all-certs "$sign_uri" || fail "p11tool --login --list-all-certs (sign)"
check "... with --login, the signature certificate too" \
    has "$w/sign-certs-login" "object=$(uri_enc "$sign_label");type=cert\$"
test_sign() { # test_sign PIN URI [provider]: p11tool --test-sign signs and verifies both ways
    into "$w/test-sign" env GNUTLS_PIN="$1" timeout 30 p11tool --provider "${3:-$module}" \
        --login --test-sign "$2" \
        && has "$w/test-sign" 'Verifying against public key in the token\.\.\. ok'
}
n=$(sigs)
check "GNUTLS_PIN=1234 p11tool --login --test-sign with the authentication key" \
    test_sign 1234 "$auth_uri;object=$(uri_enc "$auth_label")"
check "GNUTLS_PIN=ABC123 p11tool --login --test-sign with the signature key" \
    test_sign ABC123 "$sign_uri;object=$(uri_enc "$sign_label")"
check "... two signatures on the card" [ "$(sigs)" = $((n + 2)) ]

# --- p11-kit server: one token served to another process ----------------------------------------
bg p11-kit server -f -n "$w/p11.sock" --provider "$module" "$auth_uri" >"$w/server.log" 2>&1
wait_for "$w/server.log" 'P11_KIT_SERVER_ADDRESS='
export P11_KIT_SERVER_ADDRESS="unix:path=$w/p11.sock"
ok "p11-kit server serves the authentication token on $w/p11.sock"
into "$w/client-slots" timed pkcs11-tool --module "$client_so" -L || fail "pkcs11-tool -L over p11-kit-client.so"
check "a second process (pkcs11-tool with p11-kit-client.so) sees the authentication token" \
    has "$w/client-slots" "token label *: $auth_token"
check "... and only the token the server was given" lacks "$w/client-slots" "token label *: $sign_token"
n=$(sigs)
into "$w/client-sign" timed pkcs11-tool --module "$client_so" --login --pin 1234 -s \
    -m SHA256-RSA-PKCS --id 01 -i "$w/msg" -o "$w/client.sig" || fail "signing through p11-kit-client.so"
into "$w/client-cert" timed pkcs11-tool --module "$client_so" --read-object --type cert --id 01 \
    -o "$w/client-cert.der" || fail "reading the certificate through p11-kit-client.so"
openssl x509 -inform DER -in "$w/client-cert.der" -pubkey -noout >"$w/client.pub"
check "... it signs through the server, and the signature verifies with the certificate read the same way" \
    into "$w/client.verify" openssl dgst -sha256 -verify "$w/client.pub" -signature "$w/client.sig" "$w/msg"
check "... the card made that signature" [ "$(sigs)" = $((n + 1)) ]
check "p11tool --provider p11-kit-client.so --test-sign through the server" \
    test_sign 1234 "$auth_uri;object=$(uri_enc "$auth_label")" "$client_so"
unset P11_KIT_SERVER_ADDRESS

# --- p11-kit remote: a module config that runs the module in another process --------------------
user_config "$w/remote-home"
printf 'remote: |p11-kit remote %s\n' "$module" \
    >"$w/remote-home/.config/pkcs11/modules/jpki-remote.module"
into "$w/remote-list" as_user "$w/remote-home" p11-kit list-modules || fail "p11-kit list-modules (remote)"
check "remote: |p11-kit remote MODULE: p11-kit list-modules shows the tokens" \
    has_all "$w/remote-list" "^jpki-remote: " "^ +token: $auth_token\$"
n=$(sigs)
into "$w/remote-sign" as_user "$w/remote-home" env GNUTLS_PIN=1234 \
    p11tool --login --test-sign "$auth_uri;object=$(uri_enc "$auth_label")" \
    || fail "p11tool --test-sign over p11-kit remote"
check "p11tool --test-sign over p11-kit remote verifies" \
    has "$w/remote-sign" 'Verifying against public key in the token\.\.\. ok'
check "... the card made that signature" [ "$(sigs)" = $((n + 1)) ]

check "no malformed PIN reached the card" [ "$(card_stat malformed_verify_count)" = 0 ]
check "no VERIFY failed" [ "$(card_stat failed_verify_count)" = 0 ]
check_done
