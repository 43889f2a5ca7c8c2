/*
 * jpki-pkcs11.h - public header of jpki-pkcs11, a PKCS#11 module for the
 * Japanese My Number Card (マイナンバーカード, JPKI application).
 *
 * This header declares only the module's entry points. Include a standard
 * PKCS#11 header for the types first (e.g. OASIS <pkcs11.h>, p11-kit's
 * <p11-kit/pkcs11.h>, or OpenSC's <pkcs11/pkcs11.h>), so that CK_RV,
 * CK_FUNCTION_LIST, CK_INTERFACE, CK_VERSION, CK_UTF8CHAR, CK_ULONG and
 * CK_FLAGS are defined.
 *
 * Most applications load the module with dlopen() and call only
 * C_GetFunctionList or C_GetInterface; every other function is reached
 * through the returned function list (all C_* symbols are exported as well).
 *
 * Interfaces
 *   C_GetInterface("PKCS 11", NULL, ...)   -> version 3.0 function list (default)
 *   C_GetInterface("PKCS 11", {2,40}, ...) -> version 2.40 function list
 *   C_GetInterface(NULL, NULL, ...)        -> version 3.0 function list
 *   other names (e.g. "Vendor NSS FIPS Interface") -> CKR_ARGUMENTS_BAD
 *   C_GetFunctionList                      -> version 2.40 function list
 *
 * Slots
 *   Every PC/SC reader gets an index n, in the order the module first sees
 *   the readers; the index stays with the reader (by name) while the module
 *   is initialised. Reader n gives two slots:
 *     slot ID 2n     authentication token (利用者証明用, auth PIN: 4 digits, 3 tries)
 *     slot ID 2n+1   signature token      (署名用, password: 6-16 of A-Z 0-9, 5 tries;
 *                                          lower-case input is upper-cased)
 *   C_GetSlotList(CK_FALSE) lists both slots of every reader, in this order;
 *   C_GetSlotList(CK_TRUE) only those holding a card with the JPKI application.
 *   Slot flags: CKF_REMOVABLE_DEVICE | CKF_HW_SLOT (| CKF_TOKEN_PRESENT).
 *
 * Tokens
 *   label          "JPKI Auth XXXXXXXX" / "JPKI Sign XXXXXXXX", where XXXXXXXX
 *                  are the last 8 hex digits of the authentication
 *                  certificate's serial number (same on both tokens of one
 *                  card, different between cards)
 *   serialNumber   the authentication certificate's serial number in hex
 *                  (last 16 digits)
 *   manufacturerID "J-LIS (My Number Card)", model "JPKI AP"
 *   flags          CKF_WRITE_PROTECTED | CKF_LOGIN_REQUIRED |
 *                  CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED, plus
 *                  CKF_USER_PIN_COUNT_LOW / _FINAL_TRY / _LOCKED from the
 *                  card's retry counter (read when C_GetTokenInfo is called,
 *                  at most once per 2 s; C_Login and C_SetPIN update them at
 *                  once). FINAL_TRY is set while one try is left; C_Login is
 *                  not refused then (that would lock the user out).
 *                  CKF_RNG: C_GenerateRandom serves the operating system's
 *                  generator (C_SeedRandom: CKR_RANDOM_SEED_NOT_SUPPORTED).
 *                  No CKF_PROTECTED_AUTHENTICATION_PATH, no clock.
 *   PINs are checked locally first: a PIN of the wrong length or character
 *   set is refused without reaching the card, so it costs no try: C_Login
 *   answers CKR_PIN_INCORRECT, C_SetPIN CKR_PIN_LEN_RANGE / CKR_PIN_INVALID.
 *   CKU_SO is refused (CKR_USER_TYPE_INVALID).
 *   Read/write sessions are accepted. Token objects cannot be created or
 *   changed (CKR_TOKEN_WRITE_PROTECTED); session objects (CKA_TOKEN FALSE:
 *   data, X.509 certificates, RSA public keys) can, in any session, held in
 *   memory: at most 256 objects, 64 KiB each, 4 MiB in all (CKR_DEVICE_MEMORY).
 *   The card forgets both PIN verifications at once: C_Logout on one token
 *   logs out both tokens of that card. C_SetPIN (read/write session) is not
 *   a login: when no token of the card is logged in, the card's security
 *   state opened by verifying the old PIN is cleared again.
 *   Removal and resets: calls answered from memory (C_FindObjects*,
 *   C_GetAttributeValue, C_GetSessionInfo, C_Sign/VerifyInit) ask PC/SC for
 *   the card's status (no APDU): after a removal the first call returns
 *   CKR_DEVICE_REMOVED, later ones CKR_SESSION_HANDLE_INVALID; after a reset
 *   by another application the tokens are logged out (the PIN is never
 *   replayed) and C_Sign* return CKR_USER_NOT_LOGGED_IN.
 *   C_GetMechanismList/Info on a slot without a card: CKR_TOKEN_NOT_PRESENT.
 *
 * Objects (CKA_ID, CKA_LABEL)
 *   authentication token:
 *     0x01 "JPKI User Authentication"     certificate (EF 000A), public key,
 *                                         private key (CKA_PRIVATE, after login)
 *     0x03 "JPKI User Authentication CA"  CA certificate (EF 000B)
 *     CKO_PROFILE: CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN
 *   signature token:
 *     0x02 "JPKI Digital Signature"       certificate (EF 0001) and public key
 *                                         are CKA_PRIVATE=TRUE: they hold the
 *                                         holder's name, address and birth
 *                                         date and are readable only after
 *                                         C_Login; private key likewise
 *     0x04 "JPKI Digital Signature CA"    CA certificate (EF 0002), public
 *     CKO_PROFILE: CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN by default.
 *                  The user certificate is nevertheless a private object: the profile is
 *                  declared so that NSS (Firefox, Chromium) never asks for the signature
 *                  password just to list certificates during a TLS login with the
 *                  authentication key. NSS tools that look up the signature certificate by
 *                  nickname without logging in (cmsutil, signtool) then cannot find it; with
 *                  JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login in their environment this token
 *                  declares CKP_AUTHENTICATION_TOKEN only and NSS logs in before looking.
 *   Certificate, public key and private key of a pair share CKA_ID and
 *   CKA_LABEL; the CA certificates' ids match no key. CKA_UNIQUE_ID: the
 *   first 8 bytes of the certificate's SHA-1 in hex and "-cert", "-public"
 *   or "-private"; "auth-profile-N" / "sign-profile-N" for profiles.
 *
 * CKA_ALWAYS_AUTHENTICATE is CK_FALSE on both private keys.
 *   Reason: jarsigner, pkcs11-provider and many other applications fail on
 *   keys that demand a context-specific login per signature, and NSS would
 *   prompt for the PIN twice. One C_Login allows any number of signatures
 *   until C_Logout, the last session closing, removal, or a card reset by
 *   another process. C_Login(CKU_CONTEXT_SPECIFIC) is still accepted during
 *   a signing operation (it verifies the PIN again).
 *
 * Mechanisms (RSA-2048 keys; signing on the card, verification in software)
 *   CKM_RSA_PKCS (input at most 245 bytes, normally a DER DigestInfo),
 *   CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS,
 *   CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS (single- and multi-part;
 *   CKM_RSA_PKCS and CKM_RSA_PKCS_PSS single-part only):
 *     CKF_HW | CKF_SIGN | CKF_VERIFY
 *   CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512: CKF_DIGEST
 *   Only on cards that sign RSASSA-PSS themselves (detected without a PIN
 *   try, lazily, once per card): CKM_RSA_PKCS_PSS (input: a 32-byte SHA-256
 *   hash) and CKM_SHA256_RSA_PKCS_PSS, with CK_RSA_PKCS_PSS_PARAMS exactly
 *   { CKM_SHA256, CKG_MGF1_SHA256, 32 } (else CKR_MECHANISM_PARAM_INVALID):
 *     CKF_HW | CKF_SIGN | CKF_VERIFY
 *   Elsewhere these are CKR_MECHANISM_INVALID, and TLS 1.3 client
 *   authentication needs a server that allows TLS 1.2.
 *   Never: CKM_RSA_X_509, decryption; PSS is never emulated.
 *   Every signature from the card is verified against the certificate's
 *   public key before it is returned (CKR_DEVICE_ERROR otherwise).
 *
 * Vendor constants: none.
 *
 * Environment: JPKI_PKCS11_LOG=error|warn|info|debug|trace logs to stderr
 * (never PINs or certificate contents).
 */

#ifndef JPKI_PKCS11_H
#define JPKI_PKCS11_H

#ifdef __cplusplus
extern "C" {
#endif

/* Slot ID of the authentication / signature token of reader index n. */
#define JPKI_PKCS11_AUTH_SLOT(n) ((CK_SLOT_ID)(2 * (n)))
#define JPKI_PKCS11_SIGN_SLOT(n) ((CK_SLOT_ID)(2 * (n) + 1))

/* CKA_ID values (one byte each). */
#define JPKI_PKCS11_ID_AUTH    0x01
#define JPKI_PKCS11_ID_SIGN    0x02
#define JPKI_PKCS11_ID_AUTH_CA 0x03
#define JPKI_PKCS11_ID_SIGN_CA 0x04

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **ppFunctionList);
/* PKCS#11 3.0 entry points: declared when the included PKCS#11 header has the
 * 3.0 types (CKF_INTERFACE_FORK_SAFE is defined together with CK_INTERFACE). */
#ifdef CKF_INTERFACE_FORK_SAFE
CK_RV C_GetInterfaceList(CK_INTERFACE *pInterfacesList, CK_ULONG *pulCount);
CK_RV C_GetInterface(CK_UTF8CHAR *pInterfaceName, CK_VERSION *pVersion,
                     CK_INTERFACE **ppInterface, CK_FLAGS flags);
#endif

#ifdef __cplusplus
}
#endif

#endif /* JPKI_PKCS11_H */
