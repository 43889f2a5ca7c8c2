#!/usr/bin/env bash
# PDF signing with poppler's pdfsig (the signer inside Okular too) through NSS, the module
# registered plainly with `modutil -add` as the README says.
#
# poppler logs in to every token that needs a login and its password callback answers only the
# first prompt. So pdfsig must see only the signature token (the module's built-in default for
# pdfsig, okular, soffice): one -nss-pwd signs, pdfsig validates, the authentication PIN's
# counter is untouched. With JPKI_PKCS11_TOKENS=all the old failure is shown, costing no try.
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
command -v pdfsig >/dev/null || { echo "pdfsig missing (apt-get install poppler-utils)" >&2; exit 2; }

python3 "$here/lib/make_pdf.py" in.pdf
db=$tmp/nssdb
check "NSS database with the module added (modutil -add, nothing disabled)" new_nssdb "$db"
# The signature CA as a trusted root, read from the token (public object, no login).
pkcs11-tool --module "$module" --token-label "$sign_token" --read-object --type cert --id 04 \
    -o sign-ca.der >/dev/null 2>&1
check "signature CA imported as a trust root" \
    certutil -A -d "sql:$db" -n "JPKI sign CA" -t "C,C,C" -i sign-ca.der

nick="$sign_token:JPKI Digital Signature"
verify0=$(card_stat verify_count)
sigs0=$(card_stat signatures)

# 1. pdfsig lists nicknames: only the signature token's certificate is seen.
pdfsig -nssdir "sql:$db" -nss-pwd "$sign_pw" -list-nicks in.pdf >nicks.txt 2>&1
check "pdfsig -list-nicks shows the signature certificate" grep -qF "$nick" nicks.txt
check "pdfsig -list-nicks does not show the authentication token" \
    bash -c "! grep -q 'JPKI Auth' nicks.txt"

# 2. Sign with one password.
verify1=$(card_stat verify_count)
if pdfsig -nssdir "sql:$db" -nss-pwd "$sign_pw" -add-signature -nick "$nick" \
    -reason "contract" in.pdf signed.pdf >sign.txt 2>&1; then
    ok "pdfsig -add-signature signs with one -nss-pwd"
else
    show sign.txt; not_ok "pdfsig -add-signature signs with one -nss-pwd"
fi
# poppler 22.12 makes two signatures per -add-signature (observed: the first one only sizes the
# signature field); both after the one login.
check "one login (VERIFY) for the signing run" test "$(card_stat verify_count)" -eq $((verify1 + 1))
check "the card signed (poppler: 1-2 signatures)" \
    bash -c "n=\$(( $(card_stat signatures) - $sigs0 )); [ \$n -ge 1 ] && [ \$n -le 2 ]"

# 3. Validate.
pdfsig -nssdir "sql:$db" -no-ocsp signed.pdf >validate.txt 2>&1
check "pdfsig: Signature is Valid" grep -q "Signature Validation: Signature is Valid" validate.txt
check "pdfsig: signer is the card holder's signature certificate" \
    grep -q "Signer full Distinguished Name: .*Kiyose-shi" validate.txt
check "pdfsig: SHA-256, adbe.pkcs7.detached" \
    bash -c "grep -q 'Signing Hash Algorithm: SHA-256' validate.txt && grep -q 'adbe.pkcs7.detached' validate.txt"
grep -E "Certificate Validation" validate.txt | sed 's/^/# /'

check "one VERIFY per pdfsig run that logs in (list, sign), none for validation" \
    test "$(card_stat verify_count)" -eq $((verify0 + 2))

# 4. Same NSS database, all tokens shown: the old failure, without a try lost.
if JPKI_PKCS11_TOKENS=all pdfsig -nssdir "sql:$db" -nss-pwd "$sign_pw" -add-signature -nick "$nick" \
    in.pdf signed-all.pdf >all.txt 2>&1; then
    # poppler may learn to answer every prompt one day; then the default is only a convenience.
    ok "JPKI_PKCS11_TOKENS=all: pdfsig also signs (newer poppler)"
else
    check "JPKI_PKCS11_TOKENS=all: pdfsig fails as reported (password offered to the auth token)" \
        grep -q "Password was not accepted" all.txt
fi

check "no VERIFY failed" test "$(card_stat failed_verify_count)" -eq 0
check_no_pin_harm 3 5
check_done
