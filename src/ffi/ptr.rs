//! The one audited place where C pointers become Rust references.
//!
//! Every function here is `unsafe` with the same contract: a non-NULL pointer given by the
//! caller points to memory valid for the stated length (PKCS#11 requires this of applications).
//! NULL is checked here and becomes `CKR_ARGUMENTS_BAD` (or "absent" where the specification
//! gives NULL a meaning). Nothing is kept beyond the call.

use cryptoki_sys::*;

use crate::pkcs11::{Error, Result};

/// A caller's element count for a buffer of `T`s. No buffer can hold more than `isize::MAX`
/// bytes, so a larger claim is a lie (`CKR_ARGUMENTS_BAD`), refused before any slice is formed.
fn count<T>(n: CK_ULONG) -> Result<usize> {
    let n = usize::try_from(n).map_err(|_| Error::ArgumentsBad)?;
    let bytes = n
        .checked_mul(std::mem::size_of::<T>().max(1))
        .ok_or(Error::ArgumentsBad)?;
    if bytes > isize::MAX as usize {
        return Err(Error::ArgumentsBad);
    }
    Ok(n)
}

fn len(n: CK_ULONG) -> Result<usize> {
    count::<u8>(n)
}

/// Input bytes. NULL is allowed only with length 0 (an empty input).
pub unsafe fn bytes<'a>(p: *const u8, n: CK_ULONG) -> Result<&'a [u8]> {
    let n = len(n)?;
    if p.is_null() {
        return if n == 0 {
            Ok(&[])
        } else {
            Err(Error::ArgumentsBad)
        };
    }
    // SAFETY: non-NULL and valid for n bytes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Input bytes that must be present (a PIN): NULL is `CKR_ARGUMENTS_BAD` even with length 0.
pub unsafe fn required_bytes<'a>(p: *const u8, n: CK_ULONG) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    unsafe { bytes(p, n) }
}

/// A structure the caller passes in; NULL is `CKR_ARGUMENTS_BAD`.
pub unsafe fn input<'a, T>(p: *const T) -> Result<&'a T> {
    // SAFETY: non-NULL and pointing to a T by the caller's contract.
    unsafe { p.as_ref() }.ok_or(Error::ArgumentsBad)
}

/// Writes a value to an output pointer; NULL is `CKR_ARGUMENTS_BAD`.
pub unsafe fn write<T>(p: *mut T, value: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL and writable for a T by the caller's contract; `write` does not read
    // or drop the old (possibly uninitialised) contents.
    unsafe { p.write(value) };
    Ok(())
}

/// Two-call length convention for a list or byte output of `needed` elements.
/// `Ok(None)`: `out` is NULL, the length was stored. `Ok(Some(slice))`: room enough.
/// `Err(BufferTooSmall)`: the needed length was stored in `*out_len`.
pub unsafe fn output<'a, T>(
    out: *mut T,
    out_len: *mut CK_ULONG,
    needed: usize,
) -> Result<Option<&'a mut [T]>> {
    if out_len.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: out_len is non-NULL and points to a CK_ULONG by the caller's contract.
    let have = unsafe { out_len.read() };
    let needed_ul = CK_ULONG::try_from(needed).map_err(|_| Error::General)?;
    // SAFETY: as above.
    unsafe { out_len.write(needed_ul) };
    if out.is_null() {
        return Ok(None);
    }
    // A claimed size beyond any real buffer is simply "large enough": only `needed` elements
    // are ever touched.
    if usize::try_from(have).is_ok_and(|have| have < needed) {
        return Err(Error::BufferTooSmall { needed });
    }
    // SAFETY: non-NULL and valid for `have` >= `needed` elements by the caller's contract.
    Ok(Some(unsafe { std::slice::from_raw_parts_mut(out, needed) }))
}

/// Stores a produced value after [`output`] found room for `max` elements.
pub unsafe fn finish_output<T: Copy>(
    out: &mut [T],
    out_len: *mut CK_ULONG,
    data: &[T],
) -> Result<()> {
    let n = data.len().min(out.len());
    out[..n].copy_from_slice(&data[..n]);
    unsafe { write(out_len, n as CK_ULONG) }
}

/// An output array the caller sized (`C_FindObjects`): valid for at least `n` elements.
pub unsafe fn slice_mut<'a, T>(p: *mut T, n: usize) -> Result<&'a mut [T]> {
    if p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL and valid for n elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// A template given to search: (type, value) pairs copied out of the caller's memory.
pub unsafe fn template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    let n = count::<CK_ATTRIBUTE>(n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL and valid for n attributes by the caller's contract.
    let attrs = unsafe { std::slice::from_raw_parts(p, n) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each pValue is valid for ulValueLen bytes by the caller's contract.
            let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?;
            Ok((a.type_, v.to_vec()))
        })
        .collect()
}

/// A template to fill (`C_GetAttributeValue`).
pub unsafe fn template_mut<'a>(
    p: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<&'a mut [CK_ATTRIBUTE]> {
    let n = count::<CK_ATTRIBUTE>(n)?;
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL and valid for n attributes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// Room for one attribute value of `needed` bytes in a template to fill.
pub enum AttributeBuffer<'a> {
    /// pValue is NULL: the caller asks for the length.
    LengthOnly,
    /// ulValueLen is smaller than `needed`.
    TooSmall,
    /// Exactly `needed` bytes of the caller's buffer (never more are touched).
    Room(&'a mut [u8]),
}

/// The value buffer of one attribute of a template to fill, for a value of `needed` bytes.
pub unsafe fn attribute_buffer<'a>(a: &CK_ATTRIBUTE, needed: usize) -> AttributeBuffer<'a> {
    if a.pValue.is_null() {
        return AttributeBuffer::LengthOnly;
    }
    if usize::try_from(a.ulValueLen).is_ok_and(|have| have < needed) {
        return AttributeBuffer::TooSmall;
    }
    // SAFETY: pValue is valid for ulValueLen >= needed bytes by the caller's contract.
    AttributeBuffer::Room(unsafe { std::slice::from_raw_parts_mut(a.pValue as *mut u8, needed) })
}

/// The mechanism type of a `CK_MECHANISM` (its parameter is not used by our mechanisms).
pub unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<CK_MECHANISM_TYPE> {
    Ok(unsafe { input(p) }?.mechanism)
}

/// The mechanism type and parameter of a `CK_MECHANISM`. Only `CK_RSA_PKCS_PSS_PARAMS` is
/// read (when the length is exactly its size); any other non-empty parameter is `Other`.
pub unsafe fn mechanism_with_param(
    p: *const CK_MECHANISM,
) -> Result<(CK_MECHANISM_TYPE, crate::pkcs11::mechanism::MechanismParam)> {
    use crate::pkcs11::mechanism::{MechanismParam, PssParams};
    let m = unsafe { input(p) }?;
    let n = len(m.ulParameterLen)?;
    let param = if m.pParameter.is_null() || n == 0 {
        MechanismParam::None
    } else if n == std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() {
        // SAFETY: non-NULL and valid for n = size_of bytes by the caller's contract; read
        // unaligned because the caller's buffer need not be aligned.
        let raw = unsafe { (m.pParameter as *const CK_RSA_PKCS_PSS_PARAMS).read_unaligned() };
        MechanismParam::Pss(PssParams {
            hash_alg: raw.hashAlg,
            mgf: raw.mgf,
            s_len: raw.sLen,
        })
    } else {
        MechanismParam::Other
    };
    Ok((m.mechanism, param))
}

/// A NUL-terminated name (interface names).
pub unsafe fn c_str<'a>(p: *const CK_UTF8CHAR) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Some(unsafe { std::ffi::CStr::from_ptr(p as *const std::ffi::c_char) }.to_bytes())
}
