"""Signs a file's SHA-256 with an NSS-held key the way NSS document signers do it (LibreOffice's
xmlsecurity: PK11_Authenticate on the token first, then find certificate and key, then sign).

    python3 nss_sign.py DBDIR TOKEN NICKNAME PASSWORD-FILE INFILE OUTSIG

NSS's command-line signers (cmsutil, p7sign, signtool) never log in to a token that declares
CKP_PUBLIC_CERTIFICATES_TOKEN, so they cannot find a private certificate there; an application
that authenticates first can. Uses libnss3 through ctypes (no extra packages). Writes a PKCS#1
v1.5 signature over a SHA-256 DigestInfo (what NSS's SGN_* functions hand to PK11_Sign).
"""

import ctypes
import hashlib
import sys

nss = ctypes.CDLL("libnss3.so")


class SECItem(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("len", ctypes.c_uint),
    ]


PASSWORD_FUNC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
nss.NSS_Initialize.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_uint32]
nss.PK11_SetPasswordFunc.argtypes = [PASSWORD_FUNC]
nss.PK11_FindSlotByName.argtypes = [ctypes.c_char_p]
nss.PK11_FindSlotByName.restype = ctypes.c_void_p
nss.PK11_Authenticate.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
nss.PK11_FindCertFromNickname.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
nss.PK11_FindCertFromNickname.restype = ctypes.c_void_p
nss.PK11_FindKeyByAnyCert.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
nss.PK11_FindKeyByAnyCert.restype = ctypes.c_void_p
nss.PK11_SignatureLen.argtypes = [ctypes.c_void_p]
nss.PK11_Sign.argtypes = [ctypes.c_void_p, ctypes.POINTER(SECItem), ctypes.POINTER(SECItem)]
nss.PORT_GetError.restype = ctypes.c_int
nss.PORT_Strdup.argtypes = [ctypes.c_char_p]
nss.PORT_Strdup.restype = ctypes.c_void_p

SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
NSS_INIT_READONLY = 0x1


def die(what):
    sys.exit(f"nss_sign: {what} failed (NSS error {nss.PORT_GetError()})")


def main():
    dbdir, token, nickname, pwfile, infile, outsig = sys.argv[1:7]
    with open(pwfile, "rb") as f:
        password = f.read().strip()

    def give_password(_slot, retry, _arg):
        # Answer once: a retry means the password was refused, and asking again would cost a try.
        return None if retry else nss.PORT_Strdup(password)

    callback = PASSWORD_FUNC(give_password)
    if nss.NSS_Initialize(f"sql:{dbdir}".encode(), b"", b"", b"secmod.db", NSS_INIT_READONLY):
        die("NSS_Initialize")
    nss.PK11_SetPasswordFunc(callback)
    slot = nss.PK11_FindSlotByName(token.encode())
    if not slot:
        die(f"PK11_FindSlotByName({token})")
    if nss.PK11_Authenticate(slot, 1, None):
        die("PK11_Authenticate")
    cert = nss.PK11_FindCertFromNickname(nickname.encode(), None)
    if not cert:
        die(f"PK11_FindCertFromNickname({nickname})")
    key = nss.PK11_FindKeyByAnyCert(cert, None)
    if not key:
        die("PK11_FindKeyByAnyCert")
    with open(infile, "rb") as f:
        digest_info = SHA256_PREFIX + hashlib.sha256(f.read()).digest()
    data = (ctypes.c_ubyte * len(digest_info)).from_buffer_copy(digest_info)
    siglen = nss.PK11_SignatureLen(key)
    if siglen <= 0:
        die("PK11_SignatureLen")
    buf = (ctypes.c_ubyte * siglen)()
    sig = SECItem(0, buf, siglen)
    if nss.PK11_Sign(key, ctypes.byref(sig), ctypes.byref(SECItem(0, data, len(digest_info)))):
        die("PK11_Sign")
    with open(outsig, "wb") as f:
        f.write(bytes(buf[: sig.len]))
    # The process ends here; NSS_Shutdown would only add noise about objects still referenced.


if __name__ == "__main__":
    main()
