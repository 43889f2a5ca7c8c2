"""Drives a running LibreOffice (soffice --accept=pipe) over UNO for libreoffice.sh:

    lo_sign.py PIPE WORKDIR

1. writes a Writer document (ODF) to WORKDIR/doc.odt;
2. lists the personal certificates (LibreOffice logs in to the token here: its own password
   dialog appears, and the test types the password into it) and takes the card holder's
   signature certificate;
3. signs the ODF document with it (Digital Signatures, as File > Digital Signatures does);
4. exports the document to WORKDIR/doc.pdf with a PDF signature (as File > Export as PDF >
   Digital Signatures does);
5. verifies both signatures with LibreOffice itself and prints one line per result:
   "odf: valid=True status=0 signer=…", "pdf: valid=True status=0 signer=…".
"""
import sys
import time

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.embed.ElementModes import READ, READWRITE


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def connect(pipe):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    # A first start creates the user profile: on a fresh two-core machine, with the rest of the
    # suite beside it, that has taken more than a minute. This only waits for readiness.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            return resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
        except Exception:
            time.sleep(0.3)
    raise SystemExit("LibreOffice did not come up within 240 s")


def zip_storage(factory, url, mode):
    """The document as a plain ZIP storage: how LibreOffice opens ODF packages for signing."""
    fmt = uno.Any("[]com.sun.star.beans.PropertyValue", (prop("StorageFormat", "ZipFormat"),))
    return uno.invoke(factory, "createInstanceWithArguments", ((url, mode, fmt),))


def main():
    pipe, work = sys.argv[1], sys.argv[2]
    ctx = connect(pipe)
    smgr = ctx.ServiceManager
    desktop = smgr.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    odt = uno.systemPathToFileUrl(f"{work}/doc.odt")
    pdf = uno.systemPathToFileUrl(f"{work}/doc.pdf")

    doc = desktop.loadComponentFromURL("private:factory/swriter", "_blank", 0, (prop("Hidden", True),))
    doc.Text.setString("契約書: signed with a My Number Card")
    doc.storeToURL(odt, (prop("FilterName", "writer8"),))
    doc.close(True)
    print("wrote doc.odt", flush=True)

    sei = smgr.createInstanceWithContext("com.sun.star.xml.crypto.SEInitializer", ctx)
    env = sei.createSecurityContext("").getSecurityEnvironment()
    certs = env.getPersonalCertificates()  # the token login: LibreOffice's password dialog
    names = [c.SubjectName for c in certs]
    print("personal certificates:", names, flush=True)
    cert = next((c for c in certs if "Kiyose" in c.SubjectName), None)
    if cert is None:
        raise SystemExit("no signature certificate")

    sigs = smgr.createInstanceWithArgumentsAndContext(
        "com.sun.star.security.DocumentDigitalSignatures", ("1.2", True), ctx)
    factory = smgr.createInstanceWithContext("com.sun.star.embed.StorageFactory", ctx)
    sfa = smgr.createInstanceWithContext("com.sun.star.ucb.SimpleFileAccess", ctx)

    # No stream: the signature goes into the package (META-INF/documentsignatures.xml),
    # which LibreOffice commits itself.
    storage = zip_storage(factory, odt, READWRITE)
    signed = sigs.signDocumentWithCertificate(cert, storage, None)
    print("odf signed:", signed, flush=True)
    storage.dispose()

    storage = zip_storage(factory, odt, READ)
    for info in sigs.verifyDocumentContentSignatures(storage, None):
        print(f"odf: valid={info.SignatureIsValid} status={info.CertificateStatus} signer={info.Signer.SubjectName}", flush=True)
    storage.dispose()

    doc = desktop.loadComponentFromURL(odt, "_blank", 0, (prop("Hidden", True),))
    filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", (
        prop("SignPDF", True), prop("SignatureCertificate", cert), prop("SignaturePassword", ""),
        prop("SignatureReason", "contract"), prop("SignatureLocation", "Kiyose")))
    uno.invoke(doc, "storeToURL", (pdf, (prop("FilterName", "writer_pdf_Export"),
                                         prop("FilterData", filter_data))))
    doc.close(True)
    print("wrote doc.pdf", flush=True)

    pdf_in = sfa.openFileRead(pdf)
    for info in sigs.verifyDocumentContentSignatures(None, pdf_in):
        print(f"pdf: valid={info.SignatureIsValid} status={info.CertificateStatus} signer={info.Signer.SubjectName}", flush=True)


main()
