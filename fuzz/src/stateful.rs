//! Random sequences of calls through the core (sessions, login, logout, searches, signing,
//! token info, card removal, insertion and reset by another party), with the in-process
//! transport and the virtual card, against a model of what each call must answer.
//!
//! The model knows the tokens' login state as the module sees it and as the card has it, the
//! PIN counters, the sessions and their operations. After a reset by another party the module
//! learns of it only at its next card access: until its view and the card agree again, calls
//! whose answer depends on the login state are only checked against the set of answers
//! possible at all. Every signature returned is verified with the card's public key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arbitrary::{Arbitrary, Unstructured};
use cryptoki_sys::*;
use jpki_pkcs11::pkcs11::object::ulong;
use jpki_pkcs11::pkcs11::{Error, Module};
use jpki_pkcs11::transport::in_process::{InProcessReaders, SimulatedCard};
use jpki_virtual_card::{Profile, VirtualCard};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::{lock, readers_with, simulated, virtual_card, READER};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum PinChoice {
    Right,
    Wrong,
    Malformed,
    LowerCase,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeyChoice {
    Own,
    Other,
    Unknown(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Open {
        slot: u8,
        rw: bool,
    },
    Close {
        s: u8,
    },
    CloseAll {
        slot: u8,
    },
    Login {
        s: u8,
        pin: PinChoice,
        context: bool,
    },
    Logout {
        s: u8,
    },
    FindKeys {
        s: u8,
    },
    FindInit {
        s: u8,
        class: u8,
    },
    FindNext {
        s: u8,
        max: u8,
    },
    FindFinal {
        s: u8,
    },
    SignInit {
        s: u8,
        mech: u8,
        key: KeyChoice,
    },
    Sign {
        s: u8,
        len: u8,
    },
    SignUpdate {
        s: u8,
        len: u8,
    },
    SignFinal {
        s: u8,
    },
    Cancel {
        s: u8,
    },
    TokenInfo {
        slot: u8,
    },
    SessionInfo {
        s: u8,
    },
    Remove,
    Insert,
    Reset,
}

const MAX_TRIES: [u8; 2] = [3, 5];
const MECHS: [CK_MECHANISM_TYPE; 5] = [
    CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_SHA256,
];

/// Every answer this target may ever see: no device errors (the card is faithful here), no
/// general errors.
const POSSIBLE: [CK_RV; 15] = [
    CKR_OK,
    CKR_FUNCTION_NOT_SUPPORTED,
    CKR_SESSION_HANDLE_INVALID,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_OPERATION_ACTIVE,
    CKR_USER_NOT_LOGGED_IN,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_PIN_INCORRECT,
    CKR_PIN_LOCKED,
    CKR_KEY_HANDLE_INVALID,
    CKR_MECHANISM_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_SLOT_ID_INVALID,
    CKR_TOKEN_NOT_PRESENT,
    CKR_KEY_TYPE_INCONSISTENT,
];

struct MSession {
    handle: CK_SESSION_HANDLE,
    kind: usize,
    rw: bool,
    alive: bool,
}

struct SignOp {
    mech: CK_MECHANISM_TYPE,
    data: Vec<u8>,
    /// `C_SignUpdate` was called: only `C_SignFinal` may end it.
    updated: bool,
}

struct Model {
    present: bool,
    /// Login state as the module sees it.
    module_logged: [bool; 2],
    /// Login state as the card has it.
    card_logged: [bool; 2],
    tries: [u8; 2],
    keys: [Option<CK_OBJECT_HANDLE>; 2],
    sessions: Vec<MSession>,
    sign_ops: HashMap<CK_SESSION_HANDLE, SignOp>,
    find_ops: HashSet<CK_SESSION_HANDLE>,
}

impl Model {
    /// The module's view may lag behind the card's (after a reset it has not seen yet).
    fn uncertain(&self) -> bool {
        self.module_logged != self.card_logged
    }

    fn session(&self, s: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(s) % self.sessions.len())
    }

    fn handle(&self, s: u8) -> CK_SESSION_HANDLE {
        self.session(s)
            .map(|i| self.sessions[i].handle)
            .unwrap_or(0x7FFF_0000)
    }

    fn alive(&self, s: u8) -> Option<&MSession> {
        self.session(s)
            .map(|i| &self.sessions[i])
            .filter(|m| m.alive)
    }

    fn kill_all(&mut self) {
        for s in &mut self.sessions {
            s.alive = false;
        }
        self.sign_ops.clear();
        self.find_ops.clear();
        self.module_logged = [false; 2];
        self.card_logged = [false; 2];
        self.keys = [None; 2];
    }

    /// `logout_if_last`: closing the last session of a token logs that token out; the card
    /// forgets both keys unless the other token is still logged in (then the card keeps the
    /// VERIFY of this one, which no longer matters: a new login verifies again).
    fn closed(&mut self, kind: usize) {
        if self.sessions.iter().any(|s| s.alive && s.kind == kind) || !self.module_logged[kind] {
            return;
        }
        self.module_logged[kind] = false;
        self.card_logged[kind] = false;
        if !self.module_logged[1 - kind] {
            self.card_logged = [false; 2];
        }
    }
}

struct Rig {
    module: Module,
    readers: InProcessReaders,
    vc: Arc<Mutex<VirtualCard>>,
    sim: SimulatedCard,
    public: [RsaPublicKey; 2],
}

fn rv<T>(r: &Result<T, Error>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(e) => e.rv(),
    }
}

/// Checks `got` against `want` (exact), or only against [`POSSIBLE`] when `loose`.
fn check(op: &Op, got: CK_RV, want: CK_RV, loose: bool) {
    assert!(
        POSSIBLE.contains(&got),
        "{op:?}: impossible answer {got:#x}"
    );
    if !loose {
        assert_eq!(
            got, want,
            "{op:?}: answered {got:#x}, the model says {want:#x}"
        );
    }
}

/// The card's input for a signature over `data` with `mech`.
fn encoded(mech: CK_MECHANISM_TYPE, data: &[u8]) -> Vec<u8> {
    let (prefix, hash): (Box<[u8]>, Vec<u8>) = match mech {
        CKM_SHA256_RSA_PKCS => (
            Pkcs1v15Sign::new::<Sha256>().prefix,
            Sha256::digest(data).to_vec(),
        ),
        CKM_SHA1_RSA_PKCS => (
            Pkcs1v15Sign::new::<Sha1>().prefix,
            Sha1::digest(data).to_vec(),
        ),
        _ => return data.to_vec(),
    };
    let mut out = prefix.to_vec();
    out.extend_from_slice(&hash);
    out
}

fn verify(public: &RsaPublicKey, mech: CK_MECHANISM_TYPE, data: &[u8], signature: &[u8]) {
    assert_eq!(signature.len(), public.size());
    public
        .verify(
            Pkcs1v15Sign::new_unprefixed(),
            &encoded(mech, data),
            signature,
        )
        .expect("a signature that does not verify");
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    // Bit 0: extended card profile. Bits 1-3: start from sessions on both tokens, logged in,
    // with the keys found (so that random operations reach signing).
    let start = u.arbitrary::<u8>().unwrap_or(0);
    let extended = start & 1 != 0;
    let mut ops: Vec<Op> = Vec::new();
    if start & 2 != 0 {
        ops.push(Op::Open { slot: 0, rw: false });
        ops.push(Op::Open { slot: 1, rw: true });
        if start & 4 != 0 {
            ops.push(Op::Login {
                s: 0,
                pin: PinChoice::Right,
                context: false,
            });
            ops.push(Op::Login {
                s: 1,
                pin: PinChoice::Right,
                context: false,
            });
            if start & 8 != 0 {
                ops.push(Op::FindKeys { s: 0 });
                ops.push(Op::FindKeys { s: 1 });
            }
        }
    }
    match u.arbitrary::<Vec<Op>>() {
        Ok(more) if more.len() <= 64 => ops.extend(more),
        _ => return,
    }
    let profile = if extended {
        Profile::Extended
    } else {
        Profile::Conservative
    };
    let vc = virtual_card(profile);
    let (readers, sim) = readers_with(&vc);
    let state = lock(&vc).state().clone();
    let public = [
        public_key(state.auth_certificate()),
        public_key(state.sign_certificate()),
    ];
    let mut rig = Rig {
        module: Module::new(Box::new(readers.clone())),
        readers,
        vc,
        sim,
        public,
    };
    let mut model = Model {
        present: true,
        module_logged: [false; 2],
        card_logged: [false; 2],
        tries: MAX_TRIES,
        keys: [None; 2],
        sessions: Vec::new(),
        sign_ops: HashMap::new(),
        find_ops: HashSet::new(),
    };
    for op in &ops {
        step(&mut rig, &mut model, op);
        // When the module has seen every reset, its view is the card's again.
        if model.uncertain() {
            let mut seen = [false; 2];
            for s in model.sessions.iter().filter(|s| s.alive) {
                if let Ok((_, state, _)) = rig.module.session_info(s.handle) {
                    seen[s.kind] |=
                        state == CKS_RO_USER_FUNCTIONS || state == CKS_RW_USER_FUNCTIONS;
                }
            }
            model.module_logged = seen;
        }
    }
}

fn public_key(cert: &[u8]) -> RsaPublicKey {
    let data = jpki_pkcs11::pkcs11::cert::CertificateData::parse(cert).expect("card certificate");
    data.public_key
}

fn step(rig: &mut Rig, model: &mut Model, op: &Op) {
    let m = &rig.module;
    let loose = model.uncertain();
    match *op {
        Op::Open { slot, rw } => {
            let slot = CK_SLOT_ID::from(slot % 4);
            let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
            let got = m.open_session(slot, flags);
            let want = if slot >= 2 {
                CKR_SLOT_ID_INVALID
            } else if !model.present {
                CKR_TOKEN_NOT_PRESENT
            } else {
                CKR_OK
            };
            check(op, rv(&got), want, false);
            if let Ok(handle) = got {
                model.sessions.push(MSession {
                    handle,
                    kind: slot as usize,
                    rw,
                    alive: true,
                });
            }
        }
        Op::Close { s } => {
            let got = m.close_session(model.handle(s));
            let alive = model.alive(s).map(|x| x.kind);
            check(
                op,
                rv(&got),
                if alive.is_some() {
                    CKR_OK
                } else {
                    CKR_SESSION_HANDLE_INVALID
                },
                false,
            );
            if let (Some(kind), Some(i)) = (alive, model.session(s)) {
                let h = model.sessions[i].handle;
                model.sessions[i].alive = false;
                model.sign_ops.remove(&h);
                model.find_ops.remove(&h);
                model.closed(kind);
            }
        }
        Op::CloseAll { slot } => {
            let slot = CK_SLOT_ID::from(slot % 3);
            let got = m.close_all_sessions(slot);
            check(
                op,
                rv(&got),
                if slot >= 2 {
                    CKR_SLOT_ID_INVALID
                } else {
                    CKR_OK
                },
                false,
            );
            if slot < 2 {
                let kind = slot as usize;
                let mut any = false;
                for s in model
                    .sessions
                    .iter_mut()
                    .filter(|s| s.alive && s.kind == kind)
                {
                    s.alive = false;
                    model.sign_ops.remove(&s.handle);
                    model.find_ops.remove(&s.handle);
                    any = true;
                }
                if any {
                    model.closed(kind);
                }
            }
        }
        Op::Login { s, pin, context } => {
            let h = model.handle(s);
            let kind = model.alive(s).map(|x| x.kind);
            let pin_bytes: &[u8] = match (kind.unwrap_or(0), pin) {
                (0, PinChoice::Right) => b"1234",
                (0, PinChoice::Wrong) => b"9999",
                (0, PinChoice::Malformed) => b"12a",
                (0, PinChoice::LowerCase) => b"abcd",
                (_, PinChoice::Right) => b"ABC123",
                (_, PinChoice::Wrong) => b"ZZZ999",
                (_, PinChoice::Malformed) => b"AB-123",
                (_, PinChoice::LowerCase) => b"abc123",
            };
            let user = if context {
                CKU_CONTEXT_SPECIFIC
            } else {
                CKU_USER
            };
            let got = m.login(h, user, pin_bytes);
            let Some(kind) = kind else {
                check(op, rv(&got), CKR_SESSION_HANDLE_INVALID, false);
                return;
            };
            let well_formed = matches!(pin, PinChoice::Right | PinChoice::Wrong)
                || (kind == 1 && matches!(pin, PinChoice::LowerCase));
            let right = well_formed && !matches!(pin, PinChoice::Wrong);
            // Malformed PINs never reach the card: a wrong length, or a character the card
            // cannot hold; C_Login answers CKR_PIN_INCORRECT (docs/conformance.md).
            let format_error = CKR_PIN_INCORRECT;
            let want = if context && !model.sign_ops.contains_key(&h) {
                CKR_OPERATION_NOT_INITIALIZED
            } else if !well_formed {
                format_error
            } else if !context && model.module_logged[kind] {
                CKR_USER_ALREADY_LOGGED_IN
            } else if context && !model.module_logged[kind] {
                CKR_USER_NOT_LOGGED_IN
            } else if model.tries[kind] == 0 {
                CKR_PIN_LOCKED
            } else if right {
                CKR_OK
            } else if model.tries[kind] == 1 {
                CKR_PIN_LOCKED
            } else {
                CKR_PIN_INCORRECT
            };
            check(op, rv(&got), want, loose);
            // What the card did: a VERIFY was sent when the answer came from the card.
            match rv(&got) {
                CKR_OK => {
                    model.tries[kind] = MAX_TRIES[kind];
                    model.module_logged[kind] = true;
                    model.card_logged[kind] = true;
                }
                CKR_PIN_INCORRECT | CKR_PIN_LOCKED if well_formed => {
                    model.tries[kind] = model.tries[kind].saturating_sub(1);
                    model.module_logged[kind] = false;
                    model.card_logged[kind] = false;
                }
                _ => {}
            }
        }
        Op::Logout { s } => {
            let got = m.logout(model.handle(s));
            let want = match model.alive(s) {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(x) if !model.module_logged[x.kind] => CKR_USER_NOT_LOGGED_IN,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, loose);
            if rv(&got) == CKR_OK {
                model.module_logged = [false; 2];
                model.card_logged = [false; 2];
            }
        }
        Op::FindKeys { s } => {
            let h = model.handle(s);
            let template = [(CKA_CLASS, ulong(CKO_PRIVATE_KEY))];
            let got = m.find_init(h, &template).and_then(|()| {
                let found = m.find_next(h, 10);
                m.find_final(h)?;
                found
            });
            let want = match model.alive(s) {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(_) if model.find_ops.contains(&h) => CKR_OPERATION_ACTIVE,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, false);
            if let (Ok(found), Some(x)) = (&got, model.alive(s)) {
                let kind = x.kind;
                if !loose {
                    assert_eq!(
                        found.len(),
                        usize::from(model.module_logged[kind]),
                        "{op:?}"
                    );
                }
                if let Some(key) = found.first() {
                    if let Some(known) = model.keys[kind] {
                        assert_eq!(*key, known, "object handles change within an insertion");
                    }
                    model.keys[kind] = Some(*key);
                }
            }
        }
        Op::FindInit { s, class } => {
            let h = model.handle(s);
            let classes = [
                CKO_CERTIFICATE,
                CKO_PUBLIC_KEY,
                CKO_PRIVATE_KEY,
                CKO_PROFILE,
            ];
            let template = [(CKA_CLASS, ulong(classes[usize::from(class % 4)]))];
            let got = m.find_init(h, &template);
            let want = match model.alive(s) {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(_) if model.find_ops.contains(&h) => CKR_OPERATION_ACTIVE,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, false);
            if got.is_ok() {
                model.find_ops.insert(h);
            }
        }
        Op::FindNext { s, max } => {
            let h = model.handle(s);
            let got = m.find_next(h, usize::from(max));
            let want = match model.alive(s) {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(_) if !model.find_ops.contains(&h) => CKR_OPERATION_NOT_INITIALIZED,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, false);
            if let Ok(found) = got {
                assert!(found.len() <= usize::from(max));
            }
        }
        Op::FindFinal { s } => {
            let h = model.handle(s);
            let got = m.find_final(h);
            let want = match model.alive(s) {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(_) if !model.find_ops.contains(&h) => CKR_OPERATION_NOT_INITIALIZED,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, false);
            model.find_ops.remove(&h);
        }
        Op::SignInit { s, mech, key } => {
            let h = model.handle(s);
            let mech = MECHS[usize::from(mech) % MECHS.len()];
            let kind = model.alive(s).map(|x| x.kind);
            let (handle, own) = match (key, kind) {
                (KeyChoice::Own, Some(k)) => (model.keys[k], true),
                (KeyChoice::Other, Some(k)) => (model.keys[1 - k], false),
                _ => (None, false),
            };
            let unknown = match key {
                KeyChoice::Unknown(x) => 0x4000_0000 | CK_OBJECT_HANDLE::from(x),
                _ => 0x3FFF_FFFF,
            };
            let got = m.sign_init(h, mech, handle.unwrap_or(unknown));
            let want = match kind {
                None => CKR_SESSION_HANDLE_INVALID,
                Some(_) if model.sign_ops.contains_key(&h) => CKR_OPERATION_ACTIVE,
                Some(_) if mech == CKM_RSA_X_509 || mech == CKM_SHA256 => CKR_MECHANISM_INVALID,
                Some(_) if handle.is_none() || !own => CKR_KEY_HANDLE_INVALID,
                Some(k) if !model.module_logged[k] => CKR_USER_NOT_LOGGED_IN,
                Some(_) => CKR_OK,
            };
            check(op, rv(&got), want, loose);
            if got.is_ok() {
                model.sign_ops.insert(
                    h,
                    SignOp {
                        mech,
                        data: Vec::new(),
                        updated: false,
                    },
                );
            }
        }
        Op::Sign { s, len } | Op::SignUpdate { s, len } => {
            let h = model.handle(s);
            let part: Vec<u8> = (0..usize::from(len) * 2).map(|i| i as u8).collect();
            let update = matches!(op, Op::SignUpdate { .. });
            let got = if update {
                m.sign_update(h, &part).map(|()| Vec::new())
            } else {
                m.sign(h, &part)
            };
            sign_result(rig, model, op, s, h, &part, update, !update, got, loose);
        }
        Op::SignFinal { s } => {
            let h = model.handle(s);
            let got = m.sign_final(h);
            sign_result(rig, model, op, s, h, &[], false, false, got, loose);
        }
        Op::Cancel { s } => {
            let h = model.handle(s);
            let got = m.cancel_operations(h, CKF_SIGN | CKF_FIND_OBJECTS);
            let alive = model.alive(s).is_some();
            check(
                op,
                rv(&got),
                if alive {
                    CKR_OK
                } else {
                    CKR_SESSION_HANDLE_INVALID
                },
                false,
            );
            model.sign_ops.remove(&h);
            model.find_ops.remove(&h);
        }
        Op::TokenInfo { slot } => {
            let slot = CK_SLOT_ID::from(slot % 3);
            let got = m.token_info(slot);
            let want = if slot >= 2 {
                CKR_SLOT_ID_INVALID
            } else if !model.present {
                CKR_TOKEN_NOT_PRESENT
            } else {
                CKR_OK
            };
            check(op, rv(&got), want, false);
            if let (Ok(info), false) = (&got, loose) {
                let kind = slot as usize;
                let tries = model.tries[kind];
                let expected = match tries {
                    0 => CKF_USER_PIN_LOCKED,
                    1 => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
                    t if t < MAX_TRIES[kind] => CKF_USER_PIN_COUNT_LOW,
                    _ => 0,
                };
                let bits = CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW;
                assert_eq!(info.token.flags & bits, expected, "{op:?}: tries {tries}");
            }
        }
        Op::SessionInfo { s } => {
            let got = m.session_info(model.handle(s));
            let want = if model.alive(s).is_some() {
                CKR_OK
            } else {
                CKR_SESSION_HANDLE_INVALID
            };
            check(op, rv(&got), want, false);
            if let (Ok((_, state, _)), Some(x), false) = (&got, model.alive(s), loose) {
                let expected = match (x.rw, model.module_logged[x.kind]) {
                    (false, false) => CKS_RO_PUBLIC_SESSION,
                    (false, true) => CKS_RO_USER_FUNCTIONS,
                    (true, false) => CKS_RW_PUBLIC_SESSION,
                    (true, true) => CKS_RW_USER_FUNCTIONS,
                };
                assert_eq!(*state, expected, "{op:?}");
            }
        }
        Op::Remove => {
            if model.present {
                rig.readers.remove_card(READER);
                rig.module.refresh();
                model.present = false;
                model.kill_all();
            }
        }
        Op::Insert => {
            if !model.present {
                lock(&rig.vc).power_on();
                rig.sim = simulated(&rig.vc);
                rig.readers.insert_card(READER, rig.sim.clone());
                rig.module.refresh();
                model.present = true;
            }
        }
        Op::Reset => {
            if model.present {
                rig.sim.reset();
                model.card_logged = [false; 2];
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn sign_result(
    rig: &Rig,
    model: &mut Model,
    op: &Op,
    s: u8,
    h: CK_SESSION_HANDLE,
    part: &[u8],
    update: bool,
    single: bool,
    got: Result<Vec<u8>, Error>,
    loose: bool,
) {
    let Some(kind) = model.alive(s).map(|x| x.kind) else {
        check(op, rv(&got), CKR_SESSION_HANDLE_INVALID, false);
        return;
    };
    let Some(mut sign_op) = model.sign_ops.remove(&h) else {
        check(op, rv(&got), CKR_OPERATION_NOT_INITIALIZED, false);
        return;
    };
    sign_op.data.extend_from_slice(part);
    let raw = sign_op.mech == CKM_RSA_PKCS;
    // CKM_RSA_PKCS is single-part only; after an update only C_SignFinal ends the operation
    // (docs/conformance.md). Either refusal ends it.
    let want = if update && raw {
        CKR_FUNCTION_NOT_SUPPORTED
    } else if single && sign_op.updated {
        CKR_OPERATION_ACTIVE
    } else if raw && sign_op.data.len() > 245 {
        CKR_DATA_LEN_RANGE
    } else if update {
        CKR_OK
    } else if !model.module_logged[kind] {
        CKR_USER_NOT_LOGGED_IN
    } else if raw && sign_op.data.is_empty() {
        CKR_DATA_LEN_RANGE
    } else {
        CKR_OK
    };
    check(op, rv(&got), want, loose);
    match (&got, update) {
        (Ok(_), true) => {
            sign_op.updated = true;
            model.sign_ops.insert(h, sign_op);
        }
        (Ok(signature), false) => verify(&rig.public[kind], sign_op.mech, &sign_op.data, signature),
        (Err(Error::UserNotLoggedIn), false) => {
            // Not logged in, or the card refused (reset by another party): logged out.
            model.module_logged[kind] = false;
            model.card_logged[kind] = false;
        }
        _ => {}
    }
}
