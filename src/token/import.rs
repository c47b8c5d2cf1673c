//! Bring-your-own-key in the token: RSA wrapping key pairs and `C_UnwrapKey` of customer key
//! material. The material is unwrapped straight into a token object (sensitive,
//! non-extractable); it never passes through host memory, and nothing here calls `C_Decrypt`
//! on wrapped material. Asymmetric material (PKCS#8) is parsed by the token on unwrap; its
//! public key is read (RSA) or derived in the token (EC, see `asym::ec_public_x`).

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::asym::{self, oaep, HashAlg, PairUse, SignMech};
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

/// What an imported private key (DER PKCS#8, parsed by the token on unwrap) must be.
#[derive(Debug, Clone)]
pub enum ImportedPair {
    /// An RSA private key whose modulus has exactly `bits` bits.
    Rsa { bits: u32 },
    /// An EC private key on the curve whose `CKA_EC_PARAMS` are `params`.
    Ec {
        params: Vec<u8>,
        /// The curve's generator, uncompressed (`04 ‖ x ‖ y`).
        generator: Vec<u8>,
        /// The `CKA_EC_POINT` values of the curve points with a given x-coordinate (none, or
        /// the two of opposite y); host arithmetic on public values only.
        points_with_x: fn(&[u8]) -> Vec<Vec<u8>>,
    },
}

/// Material that unwrapped but is not a private key of the expected kind: why, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMaterial(pub &'static str);

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

/// A failed unwrap: bad input, or a token fault. Kryoptic answers CKR_DEVICE_ERROR for a
/// ciphertext whose padding does not check; a token that still answers is taken to mean that.
fn unwrap_err(s: &Session, op: &'static str, e: CkError) -> TokenError {
    let alive = || s.generate_random_vec(1).is_ok();
    if is_bad_wrapped(&e) || (matches!(e, CkError::Pkcs11(RvError::DeviceError, _)) && alive()) {
        TokenError::Pkcs11 {
            op,
            kind: FaultKind::BadInput,
            source: e,
        }
    } else {
        TokenError::ck(op, e)
    }
}

/// Does `wrapped` unwrap at all (into a sensitive generic secret session object, destroyed)?
fn unwraps_as_secret(
    s: &Session,
    mech: &Mechanism,
    unwrapper: ObjectHandle,
    wrapped: &[u8],
) -> bool {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ];
    match s.unwrap_key(mech, unwrapper, wrapped, &template) {
        Ok(h) => {
            let _ = s.destroy_object(h);
            true
        }
        Err(_) => false,
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
        .map_err(|e| unwrap_err(s, "C_UnwrapKey", e))?;
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
        .map_err(|e| unwrap_err(s, "C_UnwrapKey", e))?;
    Ok((h, len))
}

/// Run `f` with the mechanism, unwrapping key and ciphertext that unwrap the material itself:
/// for `RsaOaep` the wrapping key with `CKM_RSA_PKCS_OAEP`; for `RsaAesKwp` an ephemeral AES
/// key — first unwrapped here from the RSA part with `CKM_RSA_PKCS_OAEP`, destroyed after `f`
/// — with the token's RFC 5649 mechanism (`kwp`) over the rest.
fn with_material_unwrapper<T>(
    s: &Session,
    kwp: Option<Mechanism<'static>>,
    wrapping: ObjectHandle,
    wrap: ImportWrap,
    wrapped: &[u8],
    f: impl FnOnce(&Mechanism, ObjectHandle, &[u8]) -> Result<T>,
) -> Result<T> {
    let hash = match wrap {
        ImportWrap::RsaOaep(hash) => return f(&oaep(hash), wrapping, wrapped),
        ImportWrap::RsaAesKwp(hash) => hash,
    };
    let kwp = kwp.ok_or(TokenError::Rejected(
        "the token has no AES key wrap with padding (RFC 5649)",
    ))?;
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
        .map_err(|e| unwrap_err(s, "C_UnwrapKey", e))?;
    let result = f(&kwp, ephemeral, kwp_part);
    let _ = s.destroy_object(ephemeral);
    result
}

/// Faults of the device or session stay faults; any other failure of a step that checks
/// unwrapped material means the material is not what it should be.
fn material_check<T>(
    result: std::result::Result<T, CkError>,
    op: &'static str,
    why: &'static str,
) -> Result<std::result::Result<T, InvalidMaterial>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match TokenError::ck(op, e) {
            e @ TokenError::Pkcs11 {
                kind: FaultKind::Device | FaultKind::SessionFatal | FaultKind::Retryable,
                ..
            } => Err(e),
            _ => Ok(Err(InvalidMaterial(why))),
        },
    }
}

/// Template of a private key unwrapped from PKCS#8: sensitive, non-extractable, private. The
/// probe is a session object that may only sign (and derive, for EC: see
/// `asym::ec_public_x`); the key itself allows only `usage`, never derive or unwrap.
fn private_template(
    key_type: KeyType,
    usage: PairUse,
    probe: bool,
    id: &[u8],
    label: &str,
) -> Vec<Attribute> {
    let sign = usage == PairUse::Sign;
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(!probe),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(false),
    ];
    if probe {
        t.extend([
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Derive(key_type == KeyType::EC),
        ]);
    } else {
        t.extend([
            Attribute::Sign(sign),
            Attribute::Decrypt(!sign),
            Attribute::Derive(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ]);
    }
    t
}

/// Template of a public key object: allowed only `usage`, as generated key pairs are.
fn public_template(public: &PublicParts, usage: PairUse, persistent: bool) -> Vec<Attribute> {
    let sign = usage == PairUse::Sign;
    let mut t = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Token(persistent),
        Attribute::Private(false),
        Attribute::Verify(sign),
        Attribute::Encrypt(!sign),
        Attribute::Wrap(false),
    ];
    match public {
        PublicParts::Rsa { modulus, exponent } => t.extend([
            Attribute::KeyType(KeyType::RSA),
            Attribute::Modulus(modulus.clone()),
            Attribute::PublicExponent(exponent.clone()),
        ]),
        PublicParts::Ec { params, point } => t.extend([
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(params.clone()),
            Attribute::EcPoint(point.clone()),
        ]),
        // Imported private keys are RSA or EC (`ImportedPair`).
        PublicParts::Ed25519 { .. } | PublicParts::MlDsa { .. } | PublicParts::MlKem { .. } => {}
    }
    t
}

/// Bits of a big-endian unsigned integer.
fn bit_len(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

/// The public key of the unwrapped private key `probe` (a session object that may sign, and
/// derive for EC), checked against what the key spec needs: RSA — the modulus and exponent
/// the token parsed (public attributes), modulus size = the spec's; EC — the curve must be
/// the spec's, the public point's x comes from `asym::ec_public_x`, y from the curve
/// equation on the host. Either way the token then signs a fixed block with the private key
/// and the candidate public key that verifies it is the one (for EC this picks y; for RSA it
/// proves the key pair consistent).
fn public_of(
    s: &Session,
    probe: ObjectHandle,
    pair: &ImportedPair,
) -> Result<std::result::Result<PublicParts, InvalidMaterial>> {
    let read = |types: &[AttributeType]| {
        s.get_attributes(probe, types)
            .map_err(|e| TokenError::ck("C_GetAttributeValue", e))
    };
    let (candidates, mech) = match pair {
        ImportedPair::Rsa { bits } => {
            let (mut n, mut e) = (None, None);
            for a in read(&[AttributeType::Modulus, AttributeType::PublicExponent])? {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(modulus), Some(exponent)) = (n, e) else {
                return Ok(Err(InvalidMaterial("RSA key without modulus or exponent")));
            };
            if bit_len(&modulus) != *bits as usize {
                return Ok(Err(InvalidMaterial("RSA modulus of another size")));
            }
            (
                vec![PublicParts::Rsa { modulus, exponent }],
                SignMech::RsaPkcs1,
            )
        }
        ImportedPair::Ec {
            params,
            generator,
            points_with_x,
        } => {
            let curve = read(&[AttributeType::EcParams])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcParams(v) => Some(v),
                    _ => None,
                });
            if curve.as_ref() != Some(params) {
                return Ok(Err(InvalidMaterial("EC key on another curve")));
            }
            let x = match asym::ec_public_x(s, probe, generator) {
                Ok(x) => x,
                Err(
                    e @ TokenError::Pkcs11 {
                        kind: FaultKind::Device | FaultKind::SessionFatal | FaultKind::Retryable,
                        ..
                    },
                ) => return Err(e),
                Err(_) => return Ok(Err(InvalidMaterial("EC private value out of range"))),
            };
            let points = points_with_x(&x)
                .into_iter()
                .map(|point| PublicParts::Ec {
                    params: params.clone(),
                    point,
                })
                .collect();
            (points, SignMech::Ecdsa)
        }
    };
    let block = KCV_BLOCK.repeat(2);
    let signature = match material_check(
        s.sign(&mech.mechanism(), probe, &block),
        "C_Sign",
        "the private key cannot sign",
    )? {
        Ok(sig) => sig,
        Err(invalid) => return Ok(Err(invalid)),
    };
    for candidate in candidates {
        let h = match material_check(
            s.create_object(&public_template(&candidate, PairUse::Sign, false)),
            "C_CreateObject",
            "the public key is not valid",
        )? {
            Ok(h) => h,
            Err(_) => continue,
        };
        let verified = s.verify(&mech.mechanism(), h, &block, &signature);
        let _ = s.destroy_object(h);
        if verified.is_ok() {
            return Ok(Ok(candidate));
        }
    }
    Ok(Err(InvalidMaterial(
        "no public key verifies the private key's signature",
    )))
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
        self.run_keygen(move |inner, s| {
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
            let (h, len) = with_material_unwrapper(
                s,
                inner.caps.kwp_mechanism(),
                wrapping,
                wrap,
                &wrapped,
                |mech, key, data| unwrap_measured(s, mech, key, data, &template),
            )?;
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

    /// Unwrap an asymmetric private key (DER PKCS#8, parsed by the token) with the wrapping
    /// key `wrapping_id` and find its public key (see `public_of`) — all inside the token, the
    /// private key never on the host. If `persistent`, the private key (sensitive,
    /// non-extractable, allowing only `usage`) and its public key become token objects with
    /// `id` and `label`, like a generated key pair; otherwise nothing is kept (to compare
    /// material only). A ciphertext that does not unwrap is an error of kind `BadInput`;
    /// material that unwraps but is not a private key of `pair`'s kind, size or curve, or
    /// whose key pair is inconsistent, is `Ok(Err(InvalidMaterial))`. Nothing is left in the
    /// token on any failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn unwrap_import_pair(
        &self,
        wrapping_id: Vec<u8>,
        wrap: ImportWrap,
        wrapped: Vec<u8>,
        pair: ImportedPair,
        usage: PairUse,
        id: Vec<u8>,
        label: String,
        persistent: bool,
    ) -> Result<std::result::Result<PublicParts, InvalidMaterial>> {
        self.run_named("unwrap_key", move |inner, s| {
            let wrapping = inner.handle(s, ObjectKind::Private, &wrapping_id)?;
            let key_type = match pair {
                ImportedPair::Rsa { .. } => KeyType::RSA,
                ImportedPair::Ec { .. } => KeyType::EC,
            };
            with_material_unwrapper(s, inner.caps.kwp_mechanism(), wrapping, wrap, &wrapped, |mech, key, data| {
                let probe_template = private_template(key_type, usage, true, &id, &label);
                let probe = match s.unwrap_key(mech, key, data, &probe_template) {
                    Ok(h) => h,
                    // SoftHSM: the material unwrapped, but is not a PKCS#8 key of this type.
                    Err(CkError::Pkcs11(RvError::FunctionFailed, _)) => {
                        return Ok(Err(InvalidMaterial(
                            "not a PKCS#8 private key of the key's type",
                        )))
                    }
                    // Kryoptic: CKR_WRAPPED_KEY_INVALID for both. The material unwraps as a
                    // generic secret if the ciphertext was good.
                    Err(e) if unwraps_as_secret(s, mech, key, data) => {
                        tracing::debug!(error = %e, "material unwraps, but not as this key type");
                        return Ok(Err(InvalidMaterial(
                            "not a PKCS#8 private key of the key's type",
                        )));
                    }
                    Err(e) => return Err(unwrap_err(s, "C_UnwrapKey", e)),
                };
                let public = public_of(s, probe, &pair);
                let _ = s.destroy_object(probe);
                let public = match public? {
                    Ok(p) => p,
                    Err(invalid) => return Ok(Err(invalid)),
                };
                if !persistent {
                    return Ok(Ok(public));
                }
                let template = private_template(key_type, usage, false, &id, &label);
                let private = s
                    .unwrap_key(mech, key, data, &template)
                    .map_err(|e| unwrap_err(s, "C_UnwrapKey", e))?;
                let mut public_t = public_template(&public, usage, true);
                public_t.extend([
                    Attribute::Id(id.clone()),
                    Attribute::Label(label.clone().into_bytes()),
                ]);
                match s.create_object(&public_t) {
                    Ok(public_h) => {
                        inner.cache_insert(ObjectKind::Private, id.clone(), private);
                        inner.cache_insert(ObjectKind::Public, id.clone(), public_h);
                        Ok(Ok(public))
                    }
                    Err(e) => {
                        let _ = s.destroy_object(private);
                        Err(TokenError::ck("C_CreateObject", e))
                    }
                }
            })
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
