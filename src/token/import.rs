//! Bring-your-own-key in the token: RSA wrapping key pairs and `C_UnwrapKey` of customer key
//! material. The material is unwrapped straight into a token object (sensitive,
//! non-extractable); it never passes through host memory, and nothing here calls `C_Decrypt`
//! on wrapped material.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::asym::HashAlg;
use super::{FaultKind, ObjectKind, PublicParts, Result, Token, TokenError};

/// How the customer wrapped the material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportWrap {
    /// RSA-OAEP (MGF1 of the same hash) of the material.
    RsaOaep(HashAlg),
    /// RSA-OAEP of an ephemeral AES-256 key ‖ AES key wrap with padding (RFC 5649) of the
    /// material under that key.
    RsaAesKwp(HashAlg),
}

/// What the unwrapped object becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedKind {
    /// An AES key for AES-GCM (SYMMETRIC_DEFAULT), `len` bytes.
    Aes { len: usize },
    /// A generic secret for HMAC, `len` bytes within `min..=max`.
    Hmac { min: usize, max: usize },
}

fn oaep(hash: HashAlg) -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        hash.mechanism(),
        hash.mgf(),
        PkcsOaepSource::empty(),
    ))
}

/// Failures of an unwrap that mean "this ciphertext does not decrypt under this key".
fn is_bad_wrapped(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::WrappedKeyInvalid
                | RvError::WrappedKeyLenRange
                | RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::GeneralError
                | RvError::TemplateInconsistent
                | RvError::KeySizeRange,
            _
        )
    )
}

fn unwrap_err(op: &'static str, e: CkError) -> TokenError {
    if is_bad_wrapped(&e) {
        TokenError::Pkcs11 {
            op,
            kind: FaultKind::BadInput,
            source: e,
        }
    } else {
        TokenError::ck(op, e)
    }
}

/// Unwrap `wrapped` into an object made from `template` and find the material's length
/// without reading it: SoftHSM leaves `CKA_VALUE_LEN` at 0 after `C_UnwrapKey`, so the same
/// ciphertext is also unwrapped into a sensitive session copy that may only be wrapped, which
/// is wrapped (`CKM_AES_KEY_WRAP`, RFC 3394: output = length + 8, lengths that are not a
/// multiple of 8 are refused) under a session AES key the token generates; both session
/// objects are destroyed and the wrapped bytes dropped. Returns the object and the length.
fn unwrap_measured(
    s: &Session,
    mech: &Mechanism,
    unwrapper: ObjectHandle,
    wrapped: &[u8],
    template: &[Attribute],
) -> Result<(ObjectHandle, usize)> {
    let copy_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ];
    let copy = s
        .unwrap_key(mech, unwrapper, wrapped, &copy_template)
        .map_err(|e| unwrap_err("C_UnwrapKey", e))?;
    let kek_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
    ];
    let measured = match s.generate_key(&Mechanism::AesKeyGen, &kek_template) {
        Ok(kek) => {
            let out = s.wrap_key(&Mechanism::AesKeyWrap, kek, copy);
            let _ = s.destroy_object(kek);
            match out {
                Ok(w) if w.len() > 8 => Ok(w.len() - 8),
                Ok(_) => Err(TokenError::Rejected("key material has the wrong length")),
                // RFC 3394 refuses lengths that are not a multiple of 8 (SoftHSM answers with
                // one of several codes); faults of the device itself stay faults.
                Err(e) => match TokenError::ck("C_WrapKey", e) {
                    e @ TokenError::Pkcs11 {
                        kind: FaultKind::Device | FaultKind::SessionFatal | FaultKind::Retryable,
                        ..
                    } => Err(e),
                    _ => Err(TokenError::Rejected("key material has the wrong length")),
                },
            }
        }
        Err(e) => Err(TokenError::ck("C_GenerateKey", e)),
    };
    let _ = s.destroy_object(copy);
    let len = measured?;
    let h = s
        .unwrap_key(mech, unwrapper, wrapped, template)
        .map_err(|e| unwrap_err("C_UnwrapKey", e))?;
    Ok((h, len))
}

impl Token {
    /// Generate a persistent RSA wrapping key pair for an import: the private key is sensitive,
    /// non-extractable and may only unwrap. The public key is returned (and kept only as a
    /// session object, destroyed here). Returns `Ok(None)` when the token cannot do RSA-OAEP
    /// with `hash` (tried with the new public key); nothing is left in the token then.
    pub async fn generate_wrapping_pair(
        &self,
        id: Vec<u8>,
        label: String,
        bits: u32,
        hash: HashAlg,
    ) -> Result<Option<PublicParts>> {
        self.run_named("generate_key_pair", move |inner, s| {
            let public = [
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(false),
                Attribute::Private(false),
                Attribute::ModulusBits(u64::from(bits).into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
                Attribute::Wrap(true),
                Attribute::Verify(false),
                Attribute::Id(id.clone()),
            ];
            let private = [
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Unwrap(true),
                Attribute::Decrypt(false),
                Attribute::Sign(false),
                Attribute::Derive(false),
                Attribute::Id(id.clone()),
                Attribute::Label(label.into_bytes()),
            ];
            let (pub_h, priv_h) = s
                .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .map_err(|e| TokenError::ck("C_GenerateKeyPair", e))?;
            // Can the token do OAEP with this hash? Try it with the public key.
            let probe = s.encrypt(&oaep(hash), pub_h, &[0u8; 16]);
            let parts = super::asym::read_public(s, pub_h);
            let _ = s.destroy_object(pub_h);
            match (probe, parts) {
                (Ok(_), Ok(parts)) => {
                    inner.cache_insert(ObjectKind::Private, id, priv_h);
                    Ok(Some(parts))
                }
                (Err(_), _) => {
                    let _ = s.destroy_object(priv_h);
                    Ok(None)
                }
                (_, Err(e)) => {
                    let _ = s.destroy_object(priv_h);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Unwrap customer key material with the wrapping key `wrapping_id` into a sensitive,
    /// non-extractable secret key with `id` and `label` — a token object if `persistent`, else
    /// a session object destroyed before returning (to compare material only). Returns the
    /// material's key check value, computed in the token: AES-ECB of a fixed block (AES keys)
    /// or HMAC-SHA256 of it (generic secrets). A ciphertext that does not unwrap is reported
    /// with kind `BadInput`, material of the wrong length as `Rejected`; no object is left
    /// behind then.
    #[allow(clippy::too_many_arguments)]
    pub async fn unwrap_import(
        &self,
        wrapping_id: Vec<u8>,
        wrap: ImportWrap,
        wrapped: Vec<u8>,
        kind: ImportedKind,
        id: Vec<u8>,
        label: String,
        persistent: bool,
    ) -> Result<Vec<u8>> {
        self.run_named("unwrap_key", move |inner, s| {
            let wrapping = inner.handle(s, ObjectKind::Private, &wrapping_id)?;
            let mut template = vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(persistent),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Id(id.clone()),
                Attribute::Label(label.into_bytes()),
            ];
            match kind {
                ImportedKind::Aes { .. } => template.extend([
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ]),
                ImportedKind::Hmac { .. } => template.extend([
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::Sign(true),
                    Attribute::Verify(true),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                ]),
            }
            let result = match wrap {
                ImportWrap::RsaOaep(hash) => {
                    unwrap_measured(s, &oaep(hash), wrapping, &wrapped, &template)
                }
                ImportWrap::RsaAesKwp(hash) => {
                    let modulus_len = match s.get_attributes(wrapping, &[AttributeType::Modulus]) {
                        Ok(attrs) => attrs.into_iter().find_map(|a| match a {
                            Attribute::Modulus(n) => Some(n.len()),
                            _ => None,
                        }),
                        Err(e) => return Err(TokenError::ck("C_GetAttributeValue", e)),
                    }
                    .ok_or(TokenError::Rejected("RSA private key has no modulus"))?;
                    if wrapped.len() <= modulus_len {
                        return Err(TokenError::Rejected("wrapped material is too short"));
                    }
                    let (rsa_part, kwp_part) = wrapped.split_at(modulus_len);
                    let ephemeral_template = [
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(false),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Unwrap(true),
                        Attribute::Encrypt(false),
                        Attribute::Decrypt(false),
                    ];
                    let ephemeral = s
                        .unwrap_key(&oaep(hash), wrapping, rsa_part, &ephemeral_template)
                        .map_err(|e| unwrap_err("C_UnwrapKey", e))?;
                    let result = unwrap_measured(
                        s,
                        &Mechanism::AesKeyWrapPad,
                        ephemeral,
                        kwp_part,
                        &template,
                    );
                    let _ = s.destroy_object(ephemeral);
                    result
                }
            };
            let (h, len) = result?;
            let ok = match kind {
                ImportedKind::Aes { len: want } => len == want,
                ImportedKind::Hmac { min, max } => (min..=max).contains(&len),
            };
            let kcv = if ok {
                // The measured length is exact to a multiple of 8 only; the token refuses AES
                // keys whose length is not 16, 24 or 32 bytes, which makes AES-256 exact.
                check_value(s, h, kind).map_err(|e| match e {
                    e @ TokenError::Pkcs11 {
                        kind: FaultKind::Device | FaultKind::SessionFatal | FaultKind::Retryable,
                        ..
                    } => e,
                    _ => TokenError::Rejected("key material has the wrong length"),
                })
            } else {
                Err(TokenError::Rejected("key material has the wrong length"))
            };
            if kcv.is_err() || !persistent {
                let _ = s.destroy_object(h);
            } else {
                inner.cache_insert(ObjectKind::Secret, id, h);
            }
            kcv
        })
        .await
    }
}

const KCV_BLOCK: &[u8; 16] = b"kms-bridge kcv\0\x01";

fn check_value(s: &Session, h: ObjectHandle, kind: ImportedKind) -> Result<Vec<u8>> {
    match kind {
        ImportedKind::Hmac { .. } => s
            .sign(&Mechanism::Sha256Hmac, h, KCV_BLOCK)
            .map_err(|e| TokenError::ck("C_Sign", e)),
        ImportedKind::Aes { .. } => s
            .encrypt(&Mechanism::AesEcb, h, KCV_BLOCK)
            .map_err(|e| TokenError::ck("C_Encrypt", e)),
    }
}

#[cfg(test)]
mod tests {
    /// The import path never decrypts wrapped material on its way in: every step is
    /// `C_UnwrapKey` into a sensitive object (and `C_WrapKey` of a sensitive copy only to
    /// measure its length), so no plaintext material can reach host memory.
    #[test]
    fn import_code_never_decrypts_material() {
        let token_side = include_str!("import.rs");
        let code = token_side
            .split("#[cfg(test)]")
            .next()
            .unwrap_or(token_side);
        for forbidden in [
            ".decrypt(",
            "decrypt_gcm",
            "rsa_private_raw",
            "Attribute::Value(",
        ] {
            assert!(
                !code.contains(forbidden),
                "token/import.rs uses {forbidden}"
            );
        }
        let domain = include_str!("../kms/import.rs");
        for forbidden in [".decrypt", "rsa_private_raw", "oaep::"] {
            assert!(
                !domain.contains(forbidden),
                "kms/import.rs uses {forbidden}"
            );
        }
    }
}
