//! Object management functions (PKCS#11 3.0 §5.7): the card's objects are read-only; clients
//! may create session objects (docs/conformance.md).

use cryptoki_sys::*;

use super::{m, object_template, require};
use crate::ffi::{call, ptr};
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // Session objects only (docs/conformance.md); token objects: CKR_TOKEN_WRITE_PROTECTED.
    call(
        "C_CreateObject",
        format_args!("session={session}, count={count}"),
        || {
            let m = m()?;
            require(object)?;
            let template = unsafe { object_template(template, count) }?;
            let h = m.create_object(session, &template)?;
            unsafe { ptr::write(object, h) }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    new: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_CopyObject",
        format_args!("session={session}, object={object}, count={count}"),
        || {
            let m = m()?;
            require(new)?;
            let template = unsafe { object_template(template, count) }?;
            let h = m.copy_object(session, object, &template)?;
            unsafe { ptr::write(new, h) }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_DestroyObject",
        format_args!("session={session}, object={object}"),
        || m()?.destroy_object(session, object),
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    call(
        "C_GetObjectSize",
        format_args!("session={session}, object={object}"),
        || {
            let m = m()?;
            if size.is_null() {
                return Err(Error::ArgumentsBad);
            }
            let o = m.object(session, object)?;
            unsafe { ptr::write(size, o.size() as CK_ULONG) }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    use crate::pkcs11::object::AttrLookup;
    use ptr::AttributeBuffer;
    call(
        "C_GetAttributeValue",
        format_args!("session={session}, object={object}, count={count}"),
        || {
            let m = m()?;
            let attrs = unsafe { ptr::template_mut(template, count) }?;
            let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
            let o = m.object_for_read(session, object, &types)?;
            // Fill what we can; report the last problem found, in this precedence.
            let (mut sensitive, mut invalid, mut too_small) = (false, false, false);
            for a in attrs.iter_mut() {
                match o.attribute(a.type_) {
                    AttrLookup::Value(v) => match unsafe { ptr::attribute_buffer(a, v.len()) } {
                        AttributeBuffer::LengthOnly => a.ulValueLen = v.len() as CK_ULONG,
                        AttributeBuffer::Room(buf) => {
                            buf.copy_from_slice(v);
                            a.ulValueLen = v.len() as CK_ULONG;
                        }
                        AttributeBuffer::TooSmall => {
                            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                            too_small = true;
                        }
                    },
                    AttrLookup::Sensitive => {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        sensitive = true;
                    }
                    AttrLookup::Invalid => {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        invalid = true;
                    }
                }
            }
            if sensitive {
                Err(Error::Other(CKR_ATTRIBUTE_SENSITIVE))
            } else if invalid {
                Err(Error::Other(CKR_ATTRIBUTE_TYPE_INVALID))
            } else if too_small {
                Err(Error::Other(CKR_BUFFER_TOO_SMALL))
            } else {
                Ok(())
            }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    call(
        "C_SetAttributeValue",
        format_args!("session={session}, object={object}, count={count}"),
        || {
            let m = m()?;
            let template = unsafe { object_template(template, count) }?;
            m.set_attributes(session, object, &template)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    call(
        "C_FindObjectsInit",
        format_args!("session={session}, count={count}"),
        || {
            let m = m()?;
            let template = unsafe { ptr::template(template, count) }?;
            m.find_init(session, &template)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    call(
        "C_FindObjects",
        format_args!("session={session}, max={max}"),
        || {
            let m = m()?;
            if count.is_null() || (objects.is_null() && max > 0) {
                return Err(Error::ArgumentsBad);
            }
            let found = m.find_next(session, usize::try_from(max).unwrap_or(usize::MAX))?;
            if !found.is_empty() {
                // `objects` holds `max` >= found.len() handles.
                unsafe { ptr::slice_mut(objects, found.len()) }?.copy_from_slice(&found);
            }
            unsafe { ptr::write(count, found.len() as CK_ULONG) }
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    call(
        "C_FindObjectsFinal",
        format_args!("session={session}"),
        || m()?.find_final(session),
    )
}
