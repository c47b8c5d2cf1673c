//! Symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext)
//! and GenerateRandom. AES-256-GCM runs inside the token; see blob.rs for the format.

use crate::operations::Action;
use zeroize::Zeroizing;

use super::authz::{Op, Permitted};
use super::blob::{Blob, EncryptionContext, Header};
use super::ids::KeyRef;
use super::{require_enabled, texts, token_object_id, Kms, KmsError, RequestContext, Result};
use crate::model::{DataKeySpec, EncryptionAlgorithm, KeySpec, KeyUsage};
use crate::store::KeyRecord;
use crate::token::FaultKind;

#[derive(Debug)]
pub struct Encrypted {
    pub key_arn: String,
    pub ciphertext_blob: Vec<u8>,
    /// Symmetric keys only.
    pub material_id: Option<String>,
    pub algorithm: EncryptionAlgorithm,
}

pub struct Decrypted {
    pub key_arn: String,
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Symmetric keys only.
    pub material_id: Option<String>,
    pub algorithm: EncryptionAlgorithm,
}

#[derive(Debug)]
pub struct ReEncrypted {
    pub source_key_arn: String,
    pub key_arn: String,
    pub ciphertext_blob: Vec<u8>,
    /// Symmetric keys only.
    pub source_material_id: Option<String>,
    /// Symmetric keys only.
    pub destination_material_id: Option<String>,
    pub source_algorithm: EncryptionAlgorithm,
    pub destination_algorithm: EncryptionAlgorithm,
}

pub struct DataKey {
    pub key_arn: String,
    pub ciphertext_blob: Vec<u8>,
    /// None for GenerateDataKeyWithoutPlaintext.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    pub material_id: String,
}

/// Symmetric encryption needs a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key and, if given, the
/// SYMMETRIC_DEFAULT algorithm.
pub(super) fn require_symmetric(
    key: &KeyRecord,
    alg: Option<EncryptionAlgorithm>,
    operation: &str,
) -> Result<()> {
    if key.key_spec != KeySpec::SymmetricDefault || key.key_usage != KeyUsage::EncryptDecrypt {
        return Err(KmsError::InvalidKeyUsage(texts::key_usage_not_valid(
            &key.arn(),
            key.key_usage,
            operation,
        )));
    }
    match alg {
        None | Some(EncryptionAlgorithm::SymmetricDefault) => Ok(()),
        Some(other) => Err(KmsError::InvalidKeyUsage(texts::algorithm_incompatible(
            other.as_str(),
            key.key_spec.as_str(),
        ))),
    }
}

fn data_key_len(spec: Option<DataKeySpec>, number_of_bytes: Option<i64>) -> Result<usize> {
    match (spec, number_of_bytes) {
        (Some(_), Some(_)) | (None, None) => {
            Err(KmsError::Validation(texts::DATA_KEY_SPEC_OR_BYTES.into()))
        }
        (Some(DataKeySpec::Aes256), None) => Ok(32),
        (Some(DataKeySpec::Aes128), None) => Ok(16),
        (None, Some(n)) => random_len(n),
    }
}

fn random_len(n: i64) -> Result<usize> {
    let bound = match n {
        1..=1024 => return Ok(n as usize),
        ..=0 => texts::at_least(1),
        _ => texts::at_most(1024),
    };
    Err(KmsError::Validation(texts::validation(&[
        texts::constraint(&n.to_string(), "numberOfBytes", &bound),
    ])))
}

impl Kms {
    /// Encrypt under the key's current version.
    pub(super) async fn seal(
        &self,
        key: &Permitted,
        enc_ctx: &EncryptionContext,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<(Vec<u8>, String)> {
        let version = key.current_version as u32;
        let header = Header {
            key_id: key.material_key(),
            key_version: version,
            multi_region: key.multi_region.is_some(),
        };
        let (iv, ct) = key
            .token(self)?
            .encrypt_gcm(
                token_object_id(&key.key_id, version),
                header.aad(enc_ctx),
                plaintext,
            )
            .await?;
        Ok((
            Blob::encode(&header, &iv, &ct),
            self.material_id_of(key, i64::from(version)).await?,
        ))
    }

    /// Decrypt a blob: find its key, check the named key, authorize `action`, check the
    /// state, open it in the token.
    async fn open(
        &self,
        ctx: &RequestContext,
        blob: &[u8],
        named_key: Option<&KeyRef>,
        alg: Option<EncryptionAlgorithm>,
        enc_ctx: &EncryptionContext,
        action: Action,
    ) -> Result<(Permitted, Zeroizing<Vec<u8>>, String)> {
        let invalid = || KmsError::InvalidCiphertext(String::new());
        let parsed = Blob::parse(blob).ok_or_else(invalid)?;
        // A multi-Region key's blob names its set: the related key of this region opens it.
        let key = self
            .load_key(ctx, parsed.header.key_name().in_region(&ctx.region))
            .await?
            .filter(|k| k.multi_region.is_some() == parsed.header.multi_region)
            .ok_or_else(invalid)?;
        let key = self
            .authorize(
                ctx,
                key,
                Op::new(action)
                    .key_from_ciphertext(named_key.is_none())
                    .with_context(enc_ctx)
                    .fact("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),
            )
            .await?;
        // Only a caller allowed to use the blob's key learns whether the named key matches.
        if let Some(named) = named_key {
            let matches = match self.lookup(ctx, named, true).await {
                Ok(k) => k.key_id == key.key_id,
                Err(KmsError::NotFound(_)) => false,
                Err(e) => return Err(e),
            };
            if !matches {
                return Err(KmsError::IncorrectKey(texts::INCORRECT_KEY.into()));
            }
        }
        require_symmetric(&key, alg, "Decrypt")?;
        require_enabled(&key)?;
        let version = parsed.header.key_version;
        if i64::from(version) > key.current_version {
            return Err(invalid());
        }
        let aad = parsed.header.aad(enc_ctx);
        let pt = key
            .token(self)?
            .decrypt_gcm(
                token_object_id(&key.key_id, version),
                parsed.iv,
                aad,
                parsed.ciphertext,
            )
            .await
            .map_err(|e| match e.kind() {
                FaultKind::BadInput => invalid(),
                _ => e.into(),
            })?;
        let material = self.material_id_of(&key, i64::from(version)).await?;
        Ok((key, pt, material))
    }

    pub async fn encrypt(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        plaintext: Zeroizing<Vec<u8>>,
        enc_ctx: &EncryptionContext,
        alg: Option<EncryptionAlgorithm>,
    ) -> Result<Encrypted> {
        let op = Op::new(Action::Encrypt).with_context(enc_ctx).fact(
            "kms:EncryptionAlgorithm",
            alg.unwrap_or(EncryptionAlgorithm::SymmetricDefault)
                .as_str(),
        );
        let k = self.resolve(ctx, key, op).await?;
        if k.key_spec.rsa_bits().is_some() {
            return self
                .rsa_encrypt(&k, plaintext, enc_ctx, alg, "Encrypt")
                .await;
        }
        require_symmetric(&k, alg, "Encrypt")?;
        require_enabled(&k)?;
        let (blob, material_id) = self.seal(&k, enc_ctx, plaintext).await?;
        Ok(Encrypted {
            key_arn: k.arn(),
            ciphertext_blob: blob,
            material_id: Some(material_id),
            algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }

    pub async fn decrypt(
        &self,
        ctx: &RequestContext,
        blob: &[u8],
        key: Option<&KeyRef>,
        enc_ctx: &EncryptionContext,
        alg: Option<EncryptionAlgorithm>,
    ) -> Result<Decrypted> {
        if matches!(
            alg,
            Some(EncryptionAlgorithm::RsaesOaepSha1 | EncryptionAlgorithm::RsaesOaepSha256)
        ) {
            return self
                .rsa_decrypt(ctx, key, blob.to_vec(), enc_ctx, alg, Action::Decrypt)
                .await;
        }
        let (k, plaintext, material_id) = self
            .open(ctx, blob, key, alg, enc_ctx, Action::Decrypt)
            .await?;
        Ok(Decrypted {
            key_arn: k.arn(),
            plaintext,
            material_id: Some(material_id),
            algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn re_encrypt(
        &self,
        ctx: &RequestContext,
        blob: &[u8],
        source_key: Option<&KeyRef>,
        source_ctx: &EncryptionContext,
        source_alg: Option<EncryptionAlgorithm>,
        destination_key: &KeyRef,
        destination_ctx: &EncryptionContext,
        destination_alg: Option<EncryptionAlgorithm>,
    ) -> Result<ReEncrypted> {
        let op = Op::new(Action::ReEncryptTo)
            .with_context(destination_ctx)
            .fact(
                "kms:EncryptionAlgorithm",
                destination_alg.map_or("SYMMETRIC_DEFAULT", |a| a.as_str()),
            );
        let dest = self.resolve(ctx, destination_key, op).await?;
        // An RSA destination is checked by `rsa_encrypt` (algorithm, no context, state).
        let dest_rsa = dest.key_spec.rsa_bits().is_some();
        if !dest_rsa {
            require_symmetric(&dest, destination_alg, "ReEncryptTo")?;
            require_enabled(&dest)?;
        }
        let source_rsa = matches!(
            source_alg,
            Some(EncryptionAlgorithm::RsaesOaepSha1 | EncryptionAlgorithm::RsaesOaepSha256)
        );
        let (source_key_arn, plaintext, source_material_id, source_algorithm) = if source_rsa {
            let d = self
                .rsa_decrypt(
                    ctx,
                    source_key,
                    blob.to_vec(),
                    source_ctx,
                    source_alg,
                    Action::ReEncryptFrom,
                )
                .await?;
            (d.key_arn, d.plaintext, None, d.algorithm)
        } else {
            let (src, pt, material) = self
                .open(
                    ctx,
                    blob,
                    source_key,
                    source_alg,
                    source_ctx,
                    Action::ReEncryptFrom,
                )
                .await?;
            (
                src.arn(),
                pt,
                Some(material),
                EncryptionAlgorithm::SymmetricDefault,
            )
        };
        let (ciphertext_blob, destination_material_id, destination_algorithm) = if dest_rsa {
            let e = self
                .rsa_encrypt(
                    &dest,
                    plaintext,
                    destination_ctx,
                    destination_alg,
                    "ReEncryptTo",
                )
                .await?;
            (e.ciphertext_blob, None, e.algorithm)
        } else {
            let (ct, material) = self.seal(&dest, destination_ctx, plaintext).await?;
            (ct, Some(material), EncryptionAlgorithm::SymmetricDefault)
        };
        Ok(ReEncrypted {
            source_key_arn,
            key_arn: dest.arn(),
            ciphertext_blob,
            source_material_id,
            destination_material_id,
            source_algorithm,
            destination_algorithm,
        })
    }

    pub async fn generate_data_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        spec: Option<DataKeySpec>,
        number_of_bytes: Option<i64>,
        enc_ctx: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKey> {
        let len = data_key_len(spec, number_of_bytes)?;
        let action = if with_plaintext {
            Action::GenerateDataKey
        } else {
            Action::GenerateDataKeyWithoutPlaintext
        };
        let k = self
            .resolve(ctx, key, Op::new(action).with_context(enc_ctx))
            .await?;
        require_symmetric(&k, None, action.name())?;
        require_enabled(&k)?;
        let data_key = k.random(self, len).await?;
        let plaintext = with_plaintext.then(|| data_key.clone());
        let (ciphertext_blob, material_id) = self.seal(&k, enc_ctx, data_key).await?;
        Ok(DataKey {
            key_arn: k.arn(),
            ciphertext_blob,
            plaintext,
            material_id,
        })
    }

    pub async fn generate_random(
        &self,
        ctx: &RequestContext,
        number_of_bytes: Option<i64>,
        custom_key_store_id: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let permit =
            self.authorize_account(ctx, Action::GenerateRandom, "*", Default::default())?;
        let n = number_of_bytes
            .ok_or_else(|| KmsError::Validation(texts::NUMBER_OF_BYTES_REQUIRED.into()))?;
        let len = random_len(n)?;
        let token = match custom_key_store_id {
            Some(id) => self.connected_store(ctx, &permit, id).await?,
            None => permit.token(self),
        };
        Ok(token.random(len).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_key_lengths() {
        assert_eq!(data_key_len(Some(DataKeySpec::Aes256), None).unwrap(), 32);
        assert_eq!(data_key_len(Some(DataKeySpec::Aes128), None).unwrap(), 16);
        assert_eq!(data_key_len(None, Some(1024)).unwrap(), 1024);
        for bad in [
            data_key_len(None, None),
            data_key_len(Some(DataKeySpec::Aes256), Some(32)),
            data_key_len(None, Some(0)),
            data_key_len(None, Some(1025)),
        ] {
            assert!(matches!(bad, Err(KmsError::Validation(_))));
        }
    }
}
