// An e-Gov style XML signature made with the My Number Card's signature key, through the JDK's
// own XML Digital Signature API (javax.xml.crypto.dsig) over SunPKCS11 and jpki-pkcs11.
//
// The form e-Gov electronic applications (電子申請) use: an enveloped <Signature> in the
// document, one Reference to the signed element by its Id ("#Id"), Canonical XML 1.0, RSA-SHA256,
// SHA-256 digests, and the signer's certificate in KeyInfo/X509Data.
//
//   java EgovSign.java PROVIDER.cfg ALIAS IN.xml ID OUT.xml     (the PIN is read from stdin)
//
// PROVIDER.cfg is a SunPKCS11 configuration naming the signature token (README, Java section);
// ALIAS is the certificate label, "JPKI Digital Signature". Verify with
//   xmlsec1 --verify --id-attr:Id ELEMENT --trusted-pem sign-ca.pem OUT.xml
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignatureMethod;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.keyinfo.X509Data;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

public class EgovSign {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: java EgovSign.java PROVIDER.cfg ALIAS IN.xml ID OUT.xml");
            System.exit(2);
        }
        // The card: SunPKCS11 configured for the signature token; the PIN from stdin.
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        char[] pin = readPin();
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, pin);
        Arrays.fill(pin, '\0');
        PrivateKey key = (PrivateKey) ks.getKey(args[1], null);
        X509Certificate cert = (X509Certificate) ks.getCertificate(args[1]);
        if (key == null || cert == null) {
            System.err.println("no key/certificate with alias " + args[1]);
            System.exit(1);
        }

        // The document; the element to sign is found by its Id attribute.
        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        Document doc = dbf.newDocumentBuilder().parse(new File(args[2]));
        Element signed = findById(doc.getDocumentElement(), args[3]);
        if (signed == null) {
            System.err.println("no element with Id=" + args[3]);
            System.exit(1);
        }
        signed.setIdAttributeNS(null, "Id", true);

        // SignedInfo: C14N 1.0, RSA-SHA256; one Reference "#Id" with SHA-256 and C14N 1.0.
        XMLSignatureFactory fac = XMLSignatureFactory.getInstance("DOM");
        String c14n = CanonicalizationMethod.INCLUSIVE;
        Reference ref = fac.newReference("#" + args[3],
                fac.newDigestMethod(DigestMethod.SHA256, null),
                Collections.singletonList(fac.newTransform(c14n, (TransformParameterSpec) null)),
                null, null);
        SignedInfo si = fac.newSignedInfo(
                fac.newCanonicalizationMethod(c14n, (C14NMethodParameterSpec) null),
                fac.newSignatureMethod(SignatureMethod.RSA_SHA256, null),
                Collections.singletonList(ref));
        KeyInfoFactory kif = fac.getKeyInfoFactory();
        X509Data x509 = kif.newX509Data(List.of(cert));
        KeyInfo ki = kif.newKeyInfo(Collections.singletonList(x509));

        // Enveloped: the Signature goes at the end of the document element.
        DOMSignContext ctx = new DOMSignContext(key, doc.getDocumentElement());
        XMLSignature sig = fac.newXMLSignature(si, ki);
        sig.sign(ctx);

        TransformerFactory.newInstance().newTransformer()
                .transform(new DOMSource(doc), new StreamResult(new File(args[4])));
        System.out.println("signed " + args[2] + " (#" + args[3] + ") -> " + args[4]);
    }

    static char[] readPin() throws Exception {
        if (System.console() != null) {
            return System.console().readPassword("PIN for the signature token: ");
        }
        String line = new BufferedReader(new InputStreamReader(System.in)).readLine();
        return line == null ? new char[0] : line.toCharArray();
    }

    static Element findById(Element e, String id) {
        if (id.equals(e.getAttribute("Id"))) {
            return e;
        }
        for (org.w3c.dom.Node n = e.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element) {
                Element found = findById((Element) n, id);
                if (found != null) {
                    return found;
                }
            }
        }
        return null;
    }
}
