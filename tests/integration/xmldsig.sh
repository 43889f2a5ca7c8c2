#!/usr/bin/env bash
# e-Gov style XML signatures: tests/xmldsig/EgovSign.java (the JDK's javax.xml.crypto.dsig over
# SunPKCS11) signs an application document with the card's signature key — enveloped Signature,
# Reference "#Id", C14N 1.0, RSA-SHA256, SHA-256 digest, the certificate in KeyInfo/X509Data —
# and xmlsec1 --verify accepts it with the JPKI signature CA as the trust root. A changed byte
# in the signed element makes xmlsec1 refuse it.
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
command -v java >/dev/null || { echo "java missing (openjdk-17-jdk-headless)" >&2; exit 2; }
command -v xmlsec1 >/dev/null || { echo "xmlsec1 missing" >&2; exit 2; }

# SunPKCS11 configuration of the signature token (README, Java section).
cat >jpki-sign.cfg <<CFG
name = JPKI-Sign
library = $module
slotListIndex = 1
CFG
cat >apply.xml <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<DataRoot>
  <ApplData Id="ApplData">
    <Form>転居届</Form>
    <Applicant>清瀬 太郎</Applicant>
    <Date>2026-12-03</Date>
  </ApplData>
</DataRoot>
XML
"$vc" export --state "$JPKI_TEST_STATE" --out card >/dev/null

s0=$(card_stat signatures)
if printf '%s\n' "$sign_pw" | timeout 120 java "$root/tests/xmldsig/EgovSign.java" \
    jpki-sign.cfg "JPKI Digital Signature" apply.xml ApplData signed.xml >java.txt 2>&1; then
    ok "EgovSign.java signs with the signature key (SunPKCS11)"
else
    show java.txt; not_ok "EgovSign.java signs with the signature key (SunPKCS11)"
fi
check "the card made one signature" test "$(card_stat signatures)" -eq $((s0 + 1))
check "SignedInfo: C14N 1.0, RSA-SHA256, Reference #ApplData with SHA-256" bash -c '
    grep -q "CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"" signed.xml &&
    grep -q "SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"" signed.xml &&
    grep -q "Reference URI=\"#ApplData\"" signed.xml &&
    grep -q "DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"" signed.xml'
check "KeyInfo/X509Data carries the signer's certificate" \
    bash -c "grep -q '<X509Certificate>' signed.xml && grep -q \"\$(sed -n 2p card/sign_cert.pem | cut -c1-40)\" <(tr -d '\n\r' <signed.xml)"

xmlsec1 --verify --id-attr:Id ApplData --trusted-pem card/sign_ca_cert.pem signed.xml >verify.txt 2>&1
check "xmlsec1 --verify: OK" grep -q "^OK" verify.txt
xmlsec1 --verify --id-attr:Id ApplData --trusted-pem card/auth_ca_cert.pem signed.xml >wrongca.txt 2>&1
check "xmlsec1 checks the certificate: with only the authentication CA trusted it refuses" \
    bash -c '! grep -q "^OK" wrongca.txt'
sed 's/清瀬 太郎/清瀬 次郎/' signed.xml >tampered.xml
xmlsec1 --verify --id-attr:Id ApplData --trusted-pem card/sign_ca_cert.pem tampered.xml >tampered.txt 2>&1
check "xmlsec1 --verify refuses a changed application" bash -c '! grep -q "^OK" tampered.txt'

check_no_pin_harm 3 5
check_done
