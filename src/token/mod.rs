//! The token layer: the only module that talks PKCS#11 (cryptoki).
//!
//! Architecture invariants:
//! - One logged-in session stays open for the life of the process (`anchor`), so the token
//!   never logs the application out and object handles stay valid.
//! - Work sessions come from a pool; every call runs on a blocking thread.
//! - Object handles are cached by `CKA_ID`; the token is searched once at start-up and on a
//!   cache miss for an object the store says exists, never per request.
//! - Secret keys are created `CKA_SENSITIVE=true`, `CKA_EXTRACTABLE=false`, `CKA_PRIVATE=true`.

mod ceiling;
mod error;

pub use ceiling::{CeilingOp, CeilingResult};
pub use error::{FaultKind, TokenError};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub type Result<T> = std::result::Result<T, TokenError>;

/// GCM nonce length used for every encryption (96 bits).
pub const GCM_IV_LEN: usize = 12;
/// GCM tag length in bytes.
pub const GCM_TAG_LEN: usize = 16;

/// What `open` needs to find and log in to a token.
pub struct TokenConfig {
    pub module: PathBuf,
    pub label: String,
    pub pin: SecretString,
}

/// Protection attributes of a key object as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    pub sensitive: bool,
    pub extractable: bool,
    /// True if `C_GetAttributeValue(CKA_VALUE)` returned the key bytes.
    pub value_readable: bool,
}

/// A secret-key object found in the token at start-up.
#[derive(Debug, Clone)]
pub struct FoundObject {
    pub id: Vec<u8>,
    pub label: String,
}

/// A logged-in PKCS#11 token. Cheap to clone.
#[derive(Clone)]
pub struct Token {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    /// Kept open (and logged in) for the life of the process.
    _anchor: Mutex<Session>,
    pool: Mutex<Vec<Session>>,
    handles: RwLock<HashMap<Vec<u8>, ObjectHandle>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.inner.label)
            .finish()
    }
}

impl Token {
    /// Load the module, find the token by label, log in and keep that session open.
    /// Blocking: call from start-up code or a blocking thread.
    pub fn open(cfg: &TokenConfig) -> Result<Token> {
        let ctx = Pkcs11::new(&cfg.module).map_err(|e| TokenError::ck("C_LoadModule", e))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(TokenError::ck("C_Initialize", e)),
        }
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| TokenError::ck("C_GetSlotList", e))?;
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| TokenError::ck("C_GetTokenInfo", e))?;
            if info.label().trim_end() == cfg.label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| TokenError::TokenNotFound(cfg.label.clone()))?;
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::ck("C_OpenSession", e))?;
        let pin = AuthPin::from(cfg.pin.expose_secret().to_owned());
        match anchor.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(TokenError::ck("C_Login", e)),
        }
        Ok(Token {
            inner: Arc::new(Inner {
                ctx,
                slot,
                label: cfg.label.clone(),
                _anchor: Mutex::new(anchor),
                pool: Mutex::new(Vec::new()),
                handles: RwLock::new(HashMap::new()),
            }),
        })
    }

    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Run `f` with a pooled session on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_session(|s| f(&inner, s)))
            .await
            .map_err(|e| TokenError::Join(e.to_string()))?
    }

    /// Scan the token once for secret-key objects and fill the handle cache.
    pub async fn load_objects(&self) -> Result<Vec<FoundObject>> {
        self.run(|inner, s| {
            let handles = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::Token(true),
                ])
                .map_err(|e| TokenError::ck("C_FindObjects", e))?;
            let mut found = Vec::with_capacity(handles.len());
            let mut cache = inner.handles.write().unwrap_or_else(|p| p.into_inner());
            for h in handles {
                let attrs = s
                    .get_attributes(h, &[AttributeType::Id, AttributeType::Label])
                    .map_err(|e| TokenError::ck("C_GetAttributeValue", e))?;
                let mut id = None;
                let mut label = String::new();
                for a in attrs {
                    match a {
                        Attribute::Id(v) => id = Some(v),
                        Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                        _ => {}
                    }
                }
                if let Some(id) = id {
                    cache.insert(id.clone(), h);
                    found.push(FoundObject { id, label });
                }
            }
            Ok(found)
        })
        .await
    }

    /// Generate a persistent, non-extractable AES-256 key with the given `CKA_ID` and label.
    pub async fn generate_aes_key(&self, id: Vec<u8>, label: String) -> Result<()> {
        self.run(move |inner, s| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Id(id.clone()),
                Attribute::Label(label.into_bytes()),
            ];
            let h = s
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?;
            inner.cache_insert(id, h);
            Ok(())
        })
        .await
    }

    /// AES-GCM encryption under a fresh IV from the token's RNG. Returns `(iv, ciphertext‖tag)`.
    /// `aad` must not be empty (some SoftHSM builds crash on empty AAD).
    pub async fn encrypt_gcm(
        &self,
        id: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<([u8; GCM_IV_LEN], Vec<u8>)> {
        debug_assert!(!aad.is_empty());
        self.run(move |inner, s| {
            let key = inner.handle(s, &id)?;
            let mut iv = [0u8; GCM_IV_LEN];
            s.generate_random_slice(&mut iv)
                .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, &aad, ((GCM_TAG_LEN * 8) as u64).into())
                .map_err(|e| TokenError::ck("GcmParams", e))?;
            let ct = s
                .encrypt(&Mechanism::AesGcm(params), key, &plaintext)
                .map_err(|e| TokenError::ck("C_Encrypt", e))?;
            Ok((iv, ct))
        })
        .await
    }

    /// AES-GCM decryption; a bad tag or AAD is reported with kind `BadInput`
    /// (SoftHSM answers CKR_GENERAL_ERROR there, which we fold in too).
    pub async fn decrypt_gcm(
        &self,
        id: Vec<u8>,
        iv: [u8; GCM_IV_LEN],
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        debug_assert!(!aad.is_empty());
        self.run(move |inner, s| {
            let key = inner.handle(s, &id)?;
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, &aad, ((GCM_TAG_LEN * 8) as u64).into())
                .map_err(|e| TokenError::ck("GcmParams", e))?;
            match s.decrypt(&Mechanism::AesGcm(params), key, &ciphertext) {
                Ok(pt) => Ok(Zeroizing::new(pt)),
                Err(e @ CkError::Pkcs11(RvError::GeneralError, _)) => Err(TokenError::Pkcs11 {
                    op: "C_Decrypt",
                    kind: FaultKind::BadInput,
                    source: e,
                }),
                Err(e) => Err(TokenError::ck("C_Decrypt", e)),
            }
        })
        .await
    }

    /// Random bytes from the token's RNG.
    pub async fn random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>> {
        self.run(move |_, s| {
            let mut buf = Zeroizing::new(vec![0u8; len]);
            s.generate_random_slice(&mut buf)
                .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
            Ok(buf)
        })
        .await
    }

    /// Does an object with this `CKA_ID` exist? (Used by start-up reconciliation.)
    pub async fn exists(&self, id: Vec<u8>) -> Result<bool> {
        self.run(move |inner, s| match inner.handle(s, &id) {
            Ok(_) => Ok(true),
            Err(TokenError::ObjectNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    /// Destroy the object with this `CKA_ID` (no error if it is already gone).
    pub async fn destroy(&self, id: Vec<u8>) -> Result<()> {
        self.run(move |inner, s| {
            let h = match inner.handle(s, &id) {
                Ok(h) => h,
                Err(TokenError::ObjectNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            s.destroy_object(h)
                .map_err(|e| TokenError::ck("C_DestroyObject", e))?;
            inner
                .handles
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            Ok(())
        })
        .await
    }

    /// Read back the protection attributes of a key (and whether its value can be read).
    pub async fn key_protection(&self, id: Vec<u8>) -> Result<KeyProtection> {
        self.run(move |inner, s| {
            let h = inner.handle(s, &id)?;
            let attrs = s
                .get_attributes(
                    h,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Value,
                    ],
                )
                .map_err(|e| TokenError::ck("C_GetAttributeValue", e))?;
            let mut p = KeyProtection {
                sensitive: false,
                extractable: true,
                value_readable: false,
            };
            for a in attrs {
                match a {
                    Attribute::Sensitive(v) => p.sensitive = v,
                    Attribute::Extractable(v) => p.extractable = v,
                    Attribute::Value(v) => p.value_readable = !v.is_empty(),
                    _ => {}
                }
            }
            Ok(p)
        })
        .await
    }
}

impl Inner {
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let session = match pooled {
            Some(s) => s,
            None => self
                .ctx
                .open_rw_session(self.slot)
                .map_err(|e| TokenError::ck("C_OpenSession", e))?,
        };
        let result = f(&session);
        let keep = !matches!(
            &result,
            Err(e) if matches!(e.kind(), FaultKind::SessionFatal | FaultKind::Device)
        );
        if keep {
            self.pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(session);
        }
        result
    }

    fn cache_insert(&self, id: Vec<u8>, h: ObjectHandle) {
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, h);
    }

    /// Cached handle for `id`; on a miss, one search (the caller has checked the store first).
    fn handle(&self, s: &Session, id: &[u8]) -> Result<ObjectHandle> {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(*h);
        }
        let found = s
            .find_objects(&[Attribute::Token(true), Attribute::Id(id.to_vec())])
            .map_err(|e| TokenError::ck("C_FindObjects", e))?;
        let h = *found
            .first()
            .ok_or_else(|| TokenError::ObjectNotFound(hex::encode(id)))?;
        self.cache_insert(id.to_vec(), h);
        Ok(h)
    }
}
