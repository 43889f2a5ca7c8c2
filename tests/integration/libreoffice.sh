#!/usr/bin/env bash
# LibreOffice (Debian libreoffice-writer) signs with the card's signature key, under Xvfb:
#   - an ODF document (Digital Signatures), and
#   - a PDF export with a PDF signature;
# the password is typed into LibreOffice's own password dialog (xdotool, as a person would),
# and exactly one such dialog appears: LibreOffice sees only the signature token (the module's
# built-in default for soffice.bin). Both signatures are verified by LibreOffice itself, the
# PDF also by pdfsig. The document operations are driven over UNO (lib/lo_sign.py): the menus
# File > Digital Signatures and File > Export as PDF call the same services; see
# docs/signers-and-logins.md for what is and is not driven through menus.
#
# Runs inside tests/harness/with-card.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib/card.bash"
for c in soffice Xvfb xdotool pdfsig; do
    command -v "$c" >/dev/null || { echo "$c missing" >&2; exit 2; }
done
/usr/bin/python3 -c 'import uno' 2>/dev/null || { echo "python3-uno missing" >&2; exit 2; }

db=$tmp/nssdb
check "NSS database with the module added (modutil -add)" new_nssdb "$db"
"$vc" export --state "$JPKI_TEST_STATE" --out card >/dev/null
certutil -A -d "sql:$db" -n "JPKI sign CA" -t "C,C,C" -i card/sign_ca_cert.pem
export MOZILLA_CERTIFICATE_FOLDER=sql:$db

# Xvfb on a free display of our own (other suites may run their own X servers on low numbers).
x_up() { xdpyinfo >/dev/null 2>&1; }
for _ in 1 2 3; do
    n=$((300 + RANDOM % 600))
    [ -e "/tmp/.X$n-lock" ] && continue
    bg Xvfb ":$n" -screen 0 1280x1024x24 -nolisten tcp
    export DISPLAY=:$n
    for _ in $(seq 100); do x_up && break 2; kill -0 "${bg_pids[-1]}" 2>/dev/null || break; sleep 0.1; done
done
check "Xvfb is up on $DISPLAY" x_up

pipe=jpki$$
bg setsid env JPKI_PKCS11_LOG=${LO_LOG:-warn} SAL_LOG=${LO_SAL_LOG:--INFO-WARN} soffice --norestore --nologo --nodefault --nolockcheck \
    "-env:UserInstallation=file://$tmp/lo-profile" "--accept=pipe,name=$pipe;urp;" >soffice.log 2>&1

# The person at the keyboard: whenever a password dialog of LibreOffice shows, type the
# signature password into it and press Enter; record each dialog.
(
    while :; do
        for wid in $(xdotool search --onlyvisible --name "Password" 2>/dev/null); do
            grep -qx "$wid" dialogs.txt 2>/dev/null && continue
            echo "$wid" >>dialogs.txt
            echo "$(xdotool getwindowname "$wid")" >>dialog-titles.txt
            sleep 0.5
            xdotool windowactivate --sync "$wid" 2>/dev/null || xdotool windowfocus --sync "$wid"
            xdotool type --delay 50 "$sign_pw"
            xdotool key Return
        done
        sleep 0.3
    done
) &
bg_pids+=("$!")

v0=$(card_stat verify_count); s0=$(card_stat signatures)
timeout 420 /usr/bin/python3 "$here/lib/lo_sign.py" "$pipe" "$tmp" >lo.txt 2>&1
cat lo.txt | sed 's/^/# /'
grep -q "did not come up" lo.txt && tail -n 20 soffice.log | sed 's/^/# soffice: /'
check "one password dialog appeared (LibreOffice's own)" test "$(wc -l <dialogs.txt 2>/dev/null || echo 0)" -eq 1
check "LibreOffice logged in to the signature token once" test "$(card_stat verify_count)" -eq $((v0 + 1))
check "LibreOffice signed the ODF document" grep -q "odf signed: True" lo.txt
check "LibreOffice: the ODF signature is valid (signer: the card holder)" grep -q "^odf: valid=True .*Kiyose" lo.txt
check "LibreOffice wrote a signed PDF" test -s doc.pdf
check "LibreOffice: the PDF signature is valid" grep -q "^pdf: valid=True .*Kiyose" lo.txt
pdfsig -nssdir "sql:$db" -no-ocsp doc.pdf >pdfsig.txt 2>&1
check "pdfsig: the PDF signature is valid" grep -q "Signature Validation: Signature is Valid" pdfsig.txt
check "the card signed twice (ODF, PDF)" test "$(card_stat signatures)" -ge $((s0 + 2))
check_no_pin_harm 3 5
check_done
