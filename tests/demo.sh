#!/usr/bin/env bash
# The demo: build the module, start a virtual My Number Card behind a private pcscd, show the
# tokens through the module, log in, sign on the card and verify the signature with openssl.
#
#   bash tests/demo.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ -z "${JPKI_HARNESS_INSIDE:-}" ]; then
    echo "== installing or checking dependencies"
    bash tests/deps/install.sh
    export PATH=$PATH:/usr/sbin
    echo "== building the module and the virtual card"
    cargo build --release --lib --bin jpki-pkcs11-cardlink --locked # the module and its card-link helper
    cargo build -p jpki-virtual-card --locked
    echo "== starting pcscd and the virtual card (private namespace)"
    exec tests/harness/with-card.sh -- bash "$0"
fi

module=$root/target/release/libjpki_pkcs11.so
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
p11() { pkcs11-tool --module "$module" "$@"; }
say() { printf '\n== %s\n' "$*"; }

say "Readers and cards seen by pcscd"
opensc-tool --list-readers

say "Slots and tokens of the module (two tokens per card)"
p11 --list-token-slots

say "Objects visible without login on the authentication token"
p11 --slot 0 --list-objects

say "Log in with the authentication PIN (1234) and sign on the card (SHA256-RSA-PKCS)"
echo "Hello from a My Number Card" >"$w/message.txt"
p11 --slot 0 --login --pin 1234 --id 01 --sign --mechanism SHA256-RSA-PKCS \
    --input-file "$w/message.txt" --output-file "$w/message.sig"
echo "signature: $(stat -c %s "$w/message.sig") bytes"

say "Verify the signature with openssl against the certificate read through the module"
p11 --slot 0 --read-object --type cert --id 01 --output-file "$w/auth.der"
openssl x509 -inform DER -in "$w/auth.der" -noout -subject -issuer -enddate
openssl x509 -inform DER -in "$w/auth.der" -pubkey -noout >"$w/auth.pub"
openssl dgst -sha256 -verify "$w/auth.pub" -signature "$w/message.sig" "$w/message.txt"

say "PIN tries are reported through the token flags (no try is spent to read them)"
p11 --slot 0 --login --pin 9999 --list-objects >/dev/null 2>&1 || echo "wrong PIN refused by the card"
p11 --list-token-slots | grep -E 'token (label|flags)'
echo
echo "Demo finished: the card signed, openssl verified."
