//! Principals and their credentials.
//!
//! Access-key secrets are sealed with AES-256-GCM by a key that lives in the token
//! (`SEAL_KEY_ID`, non-extractable) and stored only in sealed form. A verified request looks its
//! key up through a short-lived cache, so a deleted key stops working within `CACHE_TTL` —
//! at once where the store announces other nodes' writes (PostgreSQL): their access-key and
//! identity-policy changes drop the cached entries as they arrive, and while announcements may
//! be missed every lookup reads the store.

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::store::cached::Table;
use crate::store::{
    AccessKeyRecord, IdentityPolicyRecord, Invalidation, MetadataStore, Millis, PrincipalKind,
    PrincipalRecord, StoreError,
};
use crate::token::{Token, TokenError};

/// `CKA_ID` of the token key that seals access-key secrets.
pub const SEAL_KEY_ID: &[u8] = b"kms-bridge/system/credential-seal/v1";
const SEAL_KEY_LABEL: &str = "kms-bridge-system/credential-seal/v1";
/// How long a looked-up credential or policy set is trusted before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("token: {0}")]
    Token(#[from] TokenError),
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for PrincipalError {
    fn from(e: StoreError) -> Self {
        PrincipalError::Store(e)
    }
}

pub type Result<T> = std::result::Result<T, PrincipalError>;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub arn: String,
    pub account: String,
    pub kind: PrincipalKind,
    pub name: String,
}

impl Principal {
    pub fn root_arn(account: &str) -> String {
        format!("arn:aws:iam::{account}:root")
    }

    fn from_record(r: &PrincipalRecord) -> Principal {
        Principal {
            arn: r.arn.clone(),
            account: r.account.clone(),
            kind: r.kind,
            name: r.name.clone(),
        }
    }
}

/// Principals, access keys and identity policies, backed by the store and sealed by the token.
pub struct Principals {
    token: Token,
    store: Arc<dyn MetadataStore>,
    caches: Arc<Caches>,
}

/// Verified credentials and identity policies; an invalidation wins over a racing read.
struct Caches {
    keys: Table<String, (Principal, Zeroizing<Vec<u8>>)>,
    policies: Table<String, Arc<Vec<IdentityPolicyRecord>>>,
}

impl Caches {
    fn apply(&self, change: &Invalidation) {
        match change {
            Invalidation::AccessKey(id) => self.keys.invalidate(id),
            Invalidation::Principal(arn) => self.policies.invalidate(arn),
            Invalidation::Flush => {
                self.keys.clear();
                self.policies.clear();
            }
            Invalidation::Key(_) | Invalidation::Alias { .. } => {}
        }
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// IAM names: 1–64 of `[A-Za-z0-9+=,.@_-]`.
fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn seal_aad(access_key_id: &str) -> Vec<u8> {
    let mut aad = b"kms-bridge access key\0".to_vec();
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Principals {
    /// Make sure the sealing key exists in the token.
    pub async fn open(token: Token, store: Arc<dyn MetadataStore>) -> Result<Principals> {
        if !token.exists(SEAL_KEY_ID.to_vec()).await? {
            token
                .generate_aes_key(SEAL_KEY_ID.to_vec(), SEAL_KEY_LABEL.to_owned())
                .await?;
            tracing::info!("created the credential sealing key in the token");
        }
        let caches = Arc::new(Caches {
            keys: Table::new(CACHE_TTL),
            policies: Table::new(CACHE_TTL),
        });
        if let Some(rx) = store.subscribe() {
            crate::store::follow_invalidations(rx, Arc::downgrade(&caches), Caches::apply);
        }
        Ok(Principals {
            token,
            store,
            caches,
        })
    }

    /// The principal and secret for an access key id, or None if unknown or inactive.
    pub async fn lookup(
        &self,
        access_key_id: &str,
    ) -> Result<Option<(Principal, Zeroizing<Vec<u8>>)>> {
        // While other nodes' changes may be missed, read through (and keep nothing).
        let trusted = self.store.cache_coherent();
        let generation = match self.caches.keys.get(access_key_id) {
            Ok(Some(hit)) if trusted => return Ok(Some(hit)),
            Ok(_) => None,
            Err(generation) => trusted.then_some(generation),
        };
        let Some(rec) = self.store.get_access_key(access_key_id).await? else {
            return Ok(None);
        };
        if !rec.active {
            return Ok(None);
        }
        let Some(p) = self.store.get_principal(&rec.principal_arn).await? else {
            return Ok(None);
        };
        let secret = self.unseal(access_key_id, &rec.sealed_secret).await?;
        let principal = Principal::from_record(&p);
        if let Some(generation) = generation {
            self.caches.keys.put(
                access_key_id.to_owned(),
                Some((principal.clone(), secret.clone())),
                generation,
            );
        }
        Ok(Some((principal, secret)))
    }

    /// The identity policies attached to a principal (cached briefly).
    pub async fn identity_policies(&self, arn: &str) -> Result<Arc<Vec<IdentityPolicyRecord>>> {
        let trusted = self.store.cache_coherent();
        let generation = match self.caches.policies.get(arn) {
            Ok(Some(hit)) if trusted => return Ok(hit),
            Ok(_) => None,
            Err(generation) => trusted.then_some(generation),
        };
        let docs = Arc::new(self.store.identity_policies(arn).await?);
        if let Some(generation) = generation {
            self.caches
                .policies
                .put(arn.to_owned(), Some(docs.clone()), generation);
        }
        Ok(docs)
    }

    async fn seal(&self, access_key_id: &str, secret: &[u8]) -> Result<Vec<u8>> {
        let secret = Zeroizing::new(secret.to_vec());
        Ok(self
            .token
            .seal(SEAL_KEY_ID.to_vec(), seal_aad(access_key_id), secret)
            .await?)
    }

    async fn unseal(&self, access_key_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(self
            .token
            .unseal(SEAL_KEY_ID.to_vec(), seal_aad(access_key_id), sealed)
            .await?)
    }

    /// Create a user, role or account root. Returns its ARN.
    pub async fn create_principal(
        &self,
        kind: PrincipalKind,
        account: &str,
        name: &str,
    ) -> Result<PrincipalRecord> {
        if !is_account(account) {
            return Err(PrincipalError::Invalid(format!(
                "account {account:?} must be 12 digits"
            )));
        }
        let (arn, name) = match kind {
            PrincipalKind::Root => (Principal::root_arn(account), "root".to_owned()),
            PrincipalKind::User | PrincipalKind::Role => {
                if !valid_name(name) {
                    return Err(PrincipalError::Invalid(format!(
                        "name {name:?} must be 1-64 characters of [A-Za-z0-9+=,.@_-]"
                    )));
                }
                (
                    format!("arn:aws:iam::{account}:{}/{name}", kind.as_str()),
                    name.to_owned(),
                )
            }
        };
        let rec = PrincipalRecord {
            arn: arn.clone(),
            account: account.to_owned(),
            kind,
            name,
            created_at: now_millis(),
        };
        match self.store.insert_principal(&rec).await {
            Ok(()) => Ok(rec),
            Err(StoreError::AlreadyExists) => Err(PrincipalError::AlreadyExists(arn)),
            Err(e) => Err(e.into()),
        }
    }

    /// Create (or import) an access key for a principal. Returns the id and the secret, which is
    /// shown once and stored only sealed.
    pub async fn create_access_key(
        &self,
        principal_arn: &str,
        import: Option<(String, Zeroizing<String>)>,
    ) -> Result<(String, Zeroizing<String>)> {
        if self.store.get_principal(principal_arn).await?.is_none() {
            return Err(PrincipalError::NotFound(principal_arn.to_owned()));
        }
        let (id, secret) = match import {
            Some((id, secret)) => {
                if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(PrincipalError::Invalid(format!(
                        "access key id {id:?} must be 16-128 letters and digits"
                    )));
                }
                if secret.len() < 16 {
                    return Err(PrincipalError::Invalid(
                        "secret access key must be at least 16 characters".into(),
                    ));
                }
                (id, secret)
            }
            None => {
                const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
                let rnd = self.token.random(16 + 30).await?;
                let id: String = std::iter::once("AKIA".to_owned())
                    .chain(
                        rnd[..16]
                            .iter()
                            .map(|b| (ALPHABET[(*b % 32) as usize] as char).to_string()),
                    )
                    .collect();
                use base64::Engine;
                let secret =
                    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&rnd[16..]));
                (id, secret)
            }
        };
        let sealed = self.seal(&id, secret.as_bytes()).await?;
        let rec = AccessKeyRecord {
            access_key_id: id.clone(),
            principal_arn: principal_arn.to_owned(),
            sealed_secret: sealed,
            active: true,
            created_at: now_millis(),
            mac: Vec::new(),
        };
        match self.store.insert_access_key(&rec).await {
            Ok(()) => Ok((id, secret)),
            Err(StoreError::AlreadyExists) => Err(PrincipalError::AlreadyExists(id)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<()> {
        if !self.store.delete_access_key(access_key_id).await? {
            return Err(PrincipalError::NotFound(access_key_id.to_owned()));
        }
        self.caches
            .apply(&Invalidation::AccessKey(access_key_id.to_owned()));
        Ok(())
    }

    /// Attach (or replace) a named identity policy; the document is validated first.
    pub async fn put_identity_policy(&self, arn: &str, name: &str, document: &str) -> Result<()> {
        if self.store.get_principal(arn).await?.is_none() {
            return Err(PrincipalError::NotFound(arn.to_owned()));
        }
        if !valid_name(name) {
            return Err(PrincipalError::Invalid(format!(
                "policy name {name:?} must be 1-64 characters of [A-Za-z0-9+=,.@_-]"
            )));
        }
        crate::policy::Policy::parse(document, crate::policy::PolicyKind::Identity)
            .map_err(|e| PrincipalError::Invalid(format!("malformed policy document: {e}")))?;
        self.store
            .put_identity_policy(&IdentityPolicyRecord {
                principal_arn: arn.to_owned(),
                name: name.to_owned(),
                document: document.to_owned(),
                mac: Vec::new(),
            })
            .await?;
        self.caches.apply(&Invalidation::Principal(arn.to_owned()));
        Ok(())
    }

    pub async fn delete_identity_policy(&self, arn: &str, name: &str) -> Result<()> {
        if !self.store.delete_identity_policy(arn, name).await? {
            return Err(PrincipalError::NotFound(format!("policy {name} of {arn}")));
        }
        self.caches.apply(&Invalidation::Principal(arn.to_owned()));
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<PrincipalRecord>> {
        Ok(self.store.list_principals().await?)
    }

    /// Dev bootstrap: make sure `user/<name>` exists with this access key and an identity policy
    /// allowing every KMS action and reading the audit trail (`cloudtrail:LookupEvents`, the
    /// console's audit view). Idempotent; the secret of an existing key must match.
    pub async fn bootstrap_admin(
        &self,
        account: &str,
        name: &str,
        access_key_id: &str,
        secret: Zeroizing<String>,
    ) -> Result<String> {
        let arn = format!("arn:aws:iam::{account}:user/{name}");
        match self
            .create_principal(PrincipalKind::User, account, name)
            .await
        {
            Ok(_) | Err(PrincipalError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        match self.lookup(access_key_id).await? {
            Some((p, s)) if p.arn == arn && s.as_slice() == secret.as_bytes() => {}
            Some(_) => {
                return Err(PrincipalError::Invalid(format!(
                    "access key {access_key_id} already exists with another principal or secret"
                )))
            }
            None => {
                self.create_access_key(&arn, Some((access_key_id.to_owned(), secret)))
                    .await?;
            }
        }
        self.put_identity_policy(
            &arn,
            "kms-bridge-admin",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllKms","Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"ReadAuditTrail","Effect":"Allow","Action":"cloudtrail:LookupEvents","Resource":"*"}]}"#,
        )
        .await?;
        Ok(arn)
    }
}
