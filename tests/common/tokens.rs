//! What the PKCS#11 chapter tests (`tests/pkcs11_<chapter>.rs`) share: the two tokens of a card
//! as the module presents them, the mechanism lists, and small wrappers over `cryptoki`.

use cryptoki::object::ObjectHandle;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;

use super::*;

pub const SIGN_MECHANISMS: [CK_MECHANISM_TYPE; 6] = [
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];
pub const DIGEST_MECHANISMS: [CK_MECHANISM_TYPE; 5] =
    [CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];

/// NSS vendor classes (nss `pkcs11n.h`: CKO_NSS = CKO_VENDOR_DEFINED | 0x4E534350).
pub const CKO_NSS_CRL: CK_OBJECT_CLASS = 0xCE53_4351;
pub const CKO_NSS_TRUST: CK_OBJECT_CLASS = 0xCE53_4353;
pub const CKO_NSS_BUILTIN_ROOT_LIST: CK_OBJECT_CLASS = 0xCE53_4354;
pub const VENDOR_ATTRIBUTE: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x1234;

/// A search template: (type, encoded value) pairs.
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// What differs between the two tokens of a card.
pub struct Token {
    pub slot: CK_SLOT_ID,
    pub pin: &'static str,
    pub wrong: &'static str,
    pub max_tries: u64,
    pub id: u8,
    pub ca_id: u8,
    pub label: &'static str,
    pub ca_label: &'static str,
    pub label_prefix: &'static str,
    /// Whether the user certificate and public key are private objects.
    pub private_cert: bool,
    pub pin_len: (CK_ULONG, CK_ULONG),
}

pub const AUTH: Token = Token {
    slot: AUTH_SLOT,
    pin: AUTH_PIN,
    wrong: "9999",
    max_tries: 3,
    id: 0x01,
    ca_id: 0x03,
    label: "JPKI User Authentication",
    ca_label: "JPKI User Authentication CA",
    label_prefix: "JPKI Auth",
    private_cert: false,
    pin_len: (4, 4),
};

pub const SIGN: Token = Token {
    slot: SIGN_SLOT,
    pin: SIGN_PASSWORD,
    wrong: "WRONG9",
    max_tries: 5,
    id: 0x02,
    ca_id: 0x04,
    label: "JPKI Digital Signature",
    ca_label: "JPKI Digital Signature CA",
    label_prefix: "JPKI Sign",
    private_cert: true,
    pin_len: (6, 16),
};

pub const TOKENS: [&Token; 2] = [&AUTH, &SIGN];

pub fn pin(s: &str) -> AuthPin {
    AuthPin::from(s.to_string())
}

pub fn slot(ctx: &Ctx, id: CK_SLOT_ID) -> Slot {
    ctx.p
        .get_all_slots()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| s.id() == id)
        .unwrap_or_else(|| panic!("slot {id} listed"))
}

/// A cryptoki handle for an object handle the module gave us.
pub fn handle(h: CK_OBJECT_HANDLE) -> ObjectHandle {
    // SAFETY: only used with handles returned by the module's C_FindObjects.
    unsafe { ObjectHandle::new_from_raw(h) }
}

pub fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).trim_end().to_string()
}

/// The start of every chapter test: the harness is required (see [`require_harness`]), the
/// tests run one at a time, the card is inserted and the module initialised.
pub fn start() -> (std::sync::MutexGuard<'static, ()>, Ctx) {
    require_harness();
    let guard = serial();
    // A previous test may have left the card removed if it failed half-way.
    ctl("insert");
    wait_pcsc_card(true);
    (guard, Ctx::new())
}

/// The user certificate of a token, read through the module (logs in if it must).
pub fn user_cert(ctx: &Ctx, s: CK_SESSION_HANDLE, t: &Token) -> Vec<u8> {
    let found = ctx
        .raw
        .find(
            s,
            &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![t.id])],
        )
        .expect("find user certificate");
    assert_eq!(found.len(), 1, "one user certificate on slot {}", t.slot);
    ctx.raw.attr(s, found[0], CKA_VALUE).expect("CKA_VALUE")
}

pub fn one(
    ctx: &Ctx,
    s: CK_SESSION_HANDLE,
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> CK_OBJECT_HANDLE {
    let found = ctx.raw.find(s, template).expect("C_FindObjects");
    assert_eq!(found.len(), 1, "exactly one object for {template:02x?}");
    found[0]
}
