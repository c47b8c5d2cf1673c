//! Reading secret attribute values (a data key pair's private numbers, an ECDH or ML-KEM
//! shared secret) without leaving copies behind.
//!
//! cryptoki's `Session::get_attributes` asks the module to fill buffers of its own, copies each
//! value out of them and frees them unwiped: the secret stays in freed heap memory
//! (`tests/zeroization.rs` found a data key pair's private exponent and primes there). Here the
//! module's `C_GetAttributeValue` is called directly, first for the lengths, then into
//! `Zeroizing` buffers that are the values handed on — no other copy exists.

use cryptoki::context::Function;
use cryptoki::error::Rv;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::{
    CK_C_GetAttributeValue, CK_ATTRIBUTE, CK_FUNCTION_LIST_PTR, CK_RV, CK_ULONG,
    CK_UNAVAILABLE_INFORMATION,
};
use zeroize::Zeroizing;

use super::{Result, TokenError};

/// The module's own `C_GetAttributeValue`.
pub(super) struct SecretReader(CK_C_GetAttributeValue);

impl SecretReader {
    /// Find `C_GetAttributeValue` in the function list of `module`. The module is pinned for the
    /// life of the process (`pin_module`), so the pointer stays valid, across library reloads
    /// too.
    pub(super) fn of(module: &std::path::Path) -> SecretReader {
        // SAFETY: the module is loaded already (`load`); this adds a reference that is never
        // released, and calls only `C_GetFunctionList`, which PKCS#11 allows at any time.
        let f = unsafe {
            libloading::Library::new(module).ok().and_then(|lib| {
                let get: libloading::Symbol<
                    unsafe extern "C" fn(*mut CK_FUNCTION_LIST_PTR) -> CK_RV,
                > = lib.get(b"C_GetFunctionList").ok()?;
                let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
                let rv = get(&mut list);
                std::mem::forget(lib);
                if rv != cryptoki_sys::CKR_OK || list.is_null() {
                    return None;
                }
                (*list).C_GetAttributeValue
            })
        };
        if f.is_none() {
            tracing::warn!(module = %module.display(), "C_GetAttributeValue not found: secret attributes cannot be read");
        }
        SecretReader(f)
    }

    /// The values of `types` for object `h` (None: the object has no such attribute or may not
    /// reveal it), each in a buffer that wipes itself.
    pub(super) fn read(
        &self,
        s: &Session,
        h: ObjectHandle,
        types: &[AttributeType],
    ) -> Result<Vec<Option<Zeroizing<Vec<u8>>>>> {
        let f = self.0.ok_or(TokenError::Rejected(
            "the module's C_GetAttributeValue is not available",
        ))?;
        let mut template: Vec<CK_ATTRIBUTE> = types
            .iter()
            .map(|t| CK_ATTRIBUTE {
                type_: (*t).into(),
                pValue: std::ptr::null_mut(),
                ulValueLen: 0,
            })
            .collect();
        let call = |template: &mut Vec<CK_ATTRIBUTE>| -> Result<()> {
            // SAFETY: a valid session and object handle of this module; every pValue is null
            // or points to a live buffer of ulValueLen bytes.
            let rv = unsafe {
                f(
                    s.handle(),
                    h.handle(),
                    template.as_mut_ptr(),
                    template.len() as CK_ULONG,
                )
            };
            match Rv::from(rv) {
                Rv::Ok
                | Rv::Error(
                    cryptoki::error::RvError::AttributeSensitive
                    | cryptoki::error::RvError::AttributeTypeInvalid,
                ) => Ok(()),
                other => other
                    .into_result(Function::GetAttributeValue)
                    .map_err(|e| TokenError::ck("C_GetAttributeValue", e)),
            }
        };
        call(&mut template)?;
        let mut values: Vec<Option<Zeroizing<Vec<u8>>>> = template
            .iter()
            .map(|a| {
                (a.ulValueLen != CK_UNAVAILABLE_INFORMATION)
                    .then(|| Zeroizing::new(vec![0u8; a.ulValueLen as usize]))
            })
            .collect();
        for (a, v) in template.iter_mut().zip(values.iter_mut()) {
            if let Some(v) = v {
                a.pValue = v.as_mut_ptr().cast();
                a.ulValueLen = v.len() as CK_ULONG;
            }
        }
        call(&mut template)?;
        for (a, v) in template.iter().zip(values.iter_mut()) {
            if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                *v = None;
            } else if let Some(v) = v {
                // Never longer than the buffer the module was given (it would have failed).
                v.truncate(a.ulValueLen as usize);
            }
        }
        Ok(values)
    }
}
