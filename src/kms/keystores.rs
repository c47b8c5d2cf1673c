//! Custom key stores: further PKCS#11 tokens, managed with the AWS custom key store API using
//! AWS_CLOUDHSM semantics mapped onto a token — `CloudHsmClusterId` is the token label,
//! `KeyStorePassword` the token user PIN (stored sealed by the token-held credential key),
//! `TrustAnchorCertificate` accepted and stored. Keys created with `CustomKeyStoreId` live in
//! that token; while the store is disconnected they are `Unavailable`.

use crate::operations::Action;
use std::path::PathBuf;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::authz::{AccountPermit, AccountToken};
use super::{page_limit, texts, Kms, KmsError, Page, RequestContext, Result};
use crate::store::{CustomKeyStoreRecord, KeyRecord, StoreError};
use crate::token::{Refusal, Token, TokenConfig, TokenError};

pub const MAX_KEY_STORES: usize = 10;
const CONNECTED: &str = "CONNECTED";
const DISCONNECTED: &str = "DISCONNECTED";
const FAILED: &str = "FAILED";

/// Connected custom key stores and the module their tokens are reached through.
pub struct KeyStores {
    module: PathBuf,
    threads: usize,
    working_copies: usize,
    keygen: crate::token::KeygenLane,
}

impl KeyStores {
    pub fn new(
        module: PathBuf,
        threads: usize,
        working_copies: usize,
        keygen: crate::token::KeygenLane,
    ) -> KeyStores {
        KeyStores {
            module,
            threads,
            working_copies,
            keygen,
        }
    }
}

pub struct CreateKeyStoreInput {
    pub name: String,
    pub cluster_id: Option<String>,
    pub trust_anchor: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub store_type: Option<String>,
}

fn valid_cluster_id(s: &str) -> bool {
    s.strip_prefix("cluster-").is_some_and(|r| {
        (11..=16).contains(&r.len())
            && r.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
            })
    })
}

fn seal_aad(id: &str) -> Vec<u8> {
    let mut aad = b"kms-bridge key store password\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn not_found(id: &str) -> KmsError {
    KmsError::CustomKeyStoreNotFound(texts::key_store_not_found(id))
}

impl Kms {
    /// The key state as the caller sees it: keys of a disconnected store are Unavailable, and
    /// so is an enabled or disabled key whose current material the token no longer holds (the
    /// object was destroyed behind kms-bridge's back, or the token was restored without it):
    /// it cannot be used, so it does not show `Enabled`. Found again, it shows its state.
    pub fn visible_state(&self, key: &KeyRecord) -> crate::model::KeyState {
        use crate::model::KeyState;
        match (&key.custom_key_store_id, key.state) {
            (Some(id), s) if s != KeyState::PendingDeletion && !self.token.is_connected(id) => {
                KeyState::Unavailable
            }
            (_, KeyState::Enabled | KeyState::Disabled) if self.token.misses_current(key) => {
                KeyState::Unavailable
            }
            (_, s) => s,
        }
    }

    async fn store_record(&self, ctx: &RequestContext, id: &str) -> Result<CustomKeyStoreRecord> {
        self.store
            .key_stores()
            .await?
            .into_iter()
            .find(|s| s.id == id && s.region == ctx.region && s.account == ctx.account)
            .ok_or_else(|| not_found(id))
    }

    /// A connected custom key store's token, for CreateKey / GenerateRandom.
    pub(crate) async fn connected_store(
        &self,
        ctx: &RequestContext,
        permit: &AccountPermit,
        id: &str,
    ) -> Result<AccountToken> {
        let rec = self.store_record(ctx, id).await?;
        permit.store_token(self, &rec.id).ok_or_else(|| {
            KmsError::CustomKeyStoreInvalidState(texts::key_store_not_connected(
                id,
                &rec.connection_state,
            ))
        })
    }

    async fn seal_password(
        &self,
        permit: &AccountPermit,
        id: &str,
        password: &str,
    ) -> Result<Vec<u8>> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        Ok(permit
            .token(self)
            .seal_credential(seal_aad(id), password)
            .await?)
    }

    async fn unseal_password(
        &self,
        permit: &AccountPermit,
        id: &str,
        sealed: &[u8],
    ) -> Result<SecretString> {
        let pt = permit
            .token(self)
            .unseal_credential(seal_aad(id), sealed)
            .await?;
        let s = std::str::from_utf8(&pt)
            .map_err(|_| KmsError::Internal(format!("sealed password of {id} is corrupt")))?;
        // SecretString zeroizes its copy; `pt` is zeroized on drop.
        Ok(SecretString::from(s.to_owned()))
    }

    /// Open the store's token; on failure the AWS connection error code.
    async fn connect_token(
        &self,
        permit: &AccountPermit,
        rec: &CustomKeyStoreRecord,
    ) -> std::result::Result<Token, &'static str> {
        let pin = self
            .unseal_password(permit, &rec.id, &rec.sealed_password)
            .await
            .map_err(|_| "INTERNAL_ERROR")?;
        let cfg = TokenConfig {
            module: self.key_stores.module.clone(),
            label: rec.cluster_id.clone(),
            pin,
            threads: self.key_stores.threads,
            working_copies: self.key_stores.working_copies,
            keygen: self.key_stores.keygen,
        };
        let opened = tokio::task::spawn_blocking(move || Token::open(&cfg))
            .await
            .map_err(|_| "INTERNAL_ERROR")?;
        match opened {
            Ok(t) => {
                t.load_objects().await.map_err(|_| "INTERNAL_ERROR")?;
                Ok(t)
            }
            Err(TokenError::TokenNotFound(_)) => Err("CLUSTER_NOT_FOUND"),
            Err(e) => match e.refusal() {
                Refusal::PinIncorrect => Err("INVALID_CREDENTIALS"),
                Refusal::PinLocked => Err("USER_LOCKED_OUT"),
                Refusal::Unsupported | Refusal::Other => Err("NETWORK_ERRORS"),
                Refusal::NotFromToken => Err("INTERNAL_ERROR"),
            },
        }
    }

    /// Does a token with this label exist (cluster found)?
    async fn token_label_exists(&self, label: &str) -> Result<bool> {
        let module = self.key_stores.module.clone();
        let label = label.to_owned();
        tokio::task::spawn_blocking(move || Token::label_exists(&module, &label))
            .await
            .map_err(|e| KmsError::Internal(e.to_string()))?
            .map_err(KmsError::from)
    }

    /// Reconnect the stores that were connected before a restart.
    pub async fn restore_key_stores(&self) -> Result<()> {
        // Start-up: the service reopens what was connected.
        let permit = self.service_permit().account();
        for rec in self.store.key_stores().await? {
            if rec.connection_state == CONNECTED {
                match self.connect_token(&permit, &rec).await {
                    Ok(t) => self.token.connect(rec.id.clone(), t),
                    Err(code) => {
                        tracing::warn!(store = %rec.id, code, "custom key store did not reconnect");
                        let mut r = rec.clone();
                        r.connection_state = FAILED.into();
                        r.connection_error = Some(code.into());
                        self.store.update_key_store(&r).await?;
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn create_custom_key_store(
        &self,
        ctx: &RequestContext,
        input: CreateKeyStoreInput,
    ) -> Result<String> {
        let permit =
            self.authorize_account(ctx, Action::CreateCustomKeyStore, "*", Default::default())?;
        match input.store_type.as_deref() {
            None | Some("AWS_CLOUDHSM") => {}
            Some(other) => {
                return Err(KmsError::UnsupportedOperation(
                    texts::key_store_type_unsupported(other),
                ))
            }
        }
        if input.name.is_empty() || input.name.chars().count() > 256 {
            return Err(KmsError::Validation(texts::key_store_name_length(
                &input.name,
                "customKeyStoreName",
            )));
        }
        let cluster = input.cluster_id.ok_or_else(|| {
            KmsError::Validation(texts::required_for_cloudhsm("CloudHsmClusterId"))
        })?;
        if !valid_cluster_id(&cluster) {
            return Err(KmsError::Validation(texts::cluster_id_pattern(&cluster)));
        }
        let password = input.password.ok_or_else(|| {
            KmsError::Validation(texts::required_for_cloudhsm("KeyStorePassword"))
        })?;
        if !(7..=32).contains(&password.chars().count()) {
            return Err(KmsError::Validation(texts::key_store_password_length(
                password.chars().count(),
            )));
        }
        let trust_anchor = input.trust_anchor.ok_or_else(|| {
            KmsError::Validation(texts::required_for_cloudhsm("TrustAnchorCertificate"))
        })?;
        let existing = self.store.key_stores().await?;
        if existing
            .iter()
            .any(|s| s.name == input.name && s.region == ctx.region && s.account == ctx.account)
        {
            return Err(KmsError::CustomKeyStoreNameInUse(
                texts::key_store_name_in_use(&input.name),
            ));
        }
        if existing.iter().any(|s| s.cluster_id == cluster) {
            return Err(KmsError::CloudHsmClusterInUse(texts::cluster_in_use(
                &cluster,
            )));
        }
        if existing
            .iter()
            .filter(|s| s.region == ctx.region && s.account == ctx.account)
            .count()
            >= MAX_KEY_STORES
        {
            return Err(KmsError::LimitExceeded(texts::key_store_limit(
                MAX_KEY_STORES,
            )));
        }
        if !self.token_label_exists(&cluster).await? {
            return Err(KmsError::CloudHsmClusterNotFound(texts::cluster_not_found(
                &cluster,
            )));
        }
        let id = format!(
            "cks-{}",
            &hex::encode(permit.token(self).random(9).await?.as_slice())[..17]
        );
        let rec = CustomKeyStoreRecord {
            id: id.clone(),
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            name: input.name,
            cluster_id: cluster,
            trust_anchor,
            sealed_password: self.seal_password(&permit, &id, &password).await?,
            connection_state: DISCONNECTED.into(),
            connection_error: None,
            created_at: self.now(),
        };
        match self.store.insert_key_store(&rec).await {
            Ok(()) => Ok(id),
            Err(StoreError::AlreadyExists) => Err(KmsError::CustomKeyStoreNameInUse(
                texts::KEY_STORE_NAME_OR_CLUSTER_IN_USE.into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_custom_key_stores(
        &self,
        ctx: &RequestContext,
        id: Option<&str>,
        name: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<CustomKeyStoreRecord>> {
        self.authorize_account(
            ctx,
            Action::DescribeCustomKeyStores,
            "*",
            Default::default(),
        )?;
        if id.is_some() && name.is_some() {
            return Err(KmsError::Validation(texts::KEY_STORE_ID_OR_NAME.into()));
        }
        let limit = page_limit(limit, 1000, 100)? as usize;
        let mut all: Vec<CustomKeyStoreRecord> = self
            .store
            .key_stores()
            .await?
            .into_iter()
            .filter(|s| s.region == ctx.region && s.account == ctx.account)
            .filter(|s| id.map_or(true, |i| s.id == i) && name.map_or(true, |n| s.name == n))
            .collect();
        if all.is_empty() {
            if let Some(missing) = id.or(name) {
                return Err(not_found(missing));
            }
        }
        for s in &mut all {
            // The live connection decides; FAILED keeps its error code.
            if self.token.is_connected(&s.id) {
                s.connection_state = CONNECTED.into();
            } else if s.connection_state == CONNECTED {
                s.connection_state = DISCONNECTED.into();
            }
        }
        let start = match marker {
            Some(m) => {
                all.iter()
                    .position(|s| s.id == m)
                    .ok_or_else(|| KmsError::InvalidMarker(texts::invalid_marker(m)))?
                    + 1
            }
            None => 0,
        };
        let rest = &all[start.min(all.len())..];
        let items: Vec<CustomKeyStoreRecord> = rest.iter().take(limit).cloned().collect();
        let next_marker = (rest.len() > limit)
            .then(|| items.last().map(|s| s.id.clone()))
            .flatten();
        Ok(Page { items, next_marker })
    }

    pub async fn connect_custom_key_store(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let permit =
            self.authorize_account(ctx, Action::ConnectCustomKeyStore, "*", Default::default())?;
        let mut rec = self.store_record(ctx, id).await?;
        if self.token.is_connected(id) {
            return Ok(());
        }
        if rec.connection_state == FAILED {
            return Err(KmsError::CustomKeyStoreInvalidState(
                texts::key_store_failed(
                    id,
                    rec.connection_error.as_deref().unwrap_or("unknown error"),
                ),
            ));
        }
        match self.connect_token(&permit, &rec).await {
            Ok(t) => {
                self.token.connect(rec.id.clone(), t);
                rec.connection_state = CONNECTED.into();
                rec.connection_error = None;
            }
            Err(code) => {
                tracing::warn!(store = %id, code, "custom key store connection failed");
                rec.connection_state = FAILED.into();
                rec.connection_error = Some(code.into());
            }
        }
        self.store.update_key_store(&rec).await?;
        Ok(())
    }

    pub async fn disconnect_custom_key_store(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        self.authorize_account(
            ctx,
            Action::DisconnectCustomKeyStore,
            "*",
            Default::default(),
        )?;
        let mut rec = self.store_record(ctx, id).await?;
        let was = self.token.disconnect(id);
        if !was && rec.connection_state != FAILED {
            return Err(KmsError::CustomKeyStoreInvalidState(
                texts::key_store_already_disconnected(id),
            ));
        }
        rec.connection_state = DISCONNECTED.into();
        rec.connection_error = None;
        self.store.update_key_store(&rec).await?;
        Ok(())
    }

    pub async fn update_custom_key_store(
        &self,
        ctx: &RequestContext,
        id: &str,
        new_name: Option<String>,
        password: Option<Zeroizing<String>>,
        cluster_id: Option<String>,
    ) -> Result<()> {
        let permit =
            self.authorize_account(ctx, Action::UpdateCustomKeyStore, "*", Default::default())?;
        let mut rec = self.store_record(ctx, id).await?;
        let connected = self.token.is_connected(id);
        if connected && (password.is_some() || cluster_id.is_some()) {
            return Err(KmsError::CustomKeyStoreInvalidState(
                texts::key_store_connected_update(id),
            ));
        }
        if let Some(n) = new_name {
            if n.is_empty() || n.chars().count() > 256 {
                return Err(KmsError::Validation(texts::key_store_name_length(
                    &n,
                    "newCustomKeyStoreName",
                )));
            }
            rec.name = n;
        }
        if let Some(p) = password {
            if !(7..=32).contains(&p.chars().count()) {
                return Err(KmsError::Validation(texts::key_store_password_length(
                    p.chars().count(),
                )));
            }
            rec.sealed_password = self.seal_password(&permit, id, &p).await?;
        }
        if let Some(c) = cluster_id {
            if c != rec.cluster_id {
                // A different token cannot hold this store's keys (AWS: not related).
                return Err(KmsError::CloudHsmClusterNotRelated(
                    texts::cluster_not_related(&c, &rec.cluster_id),
                ));
            }
        }
        match self.store.update_key_store(&rec).await {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists) => Err(KmsError::CustomKeyStoreNameInUse(
                texts::KEY_STORE_RENAME_IN_USE.into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_custom_key_store(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        self.authorize_account(ctx, Action::DeleteCustomKeyStore, "*", Default::default())?;
        let rec = self.store_record(ctx, id).await?;
        if self.token.is_connected(id) {
            return Err(KmsError::CustomKeyStoreInvalidState(
                texts::key_store_connected_delete(id),
            ));
        }
        // "No keys left" is checked in the deleting transaction, which locks the store's row
        // as key creation in it does: a key created concurrently is never orphaned.
        crate::failpoint::hit("delete_key_store.before_delete");
        match self.store.delete_key_store(&rec.id).await {
            Ok(_) => {
                crate::failpoint::hit("delete_key_store.after_delete");
                Ok(())
            }
            Err(StoreError::InUse) => Err(KmsError::CustomKeyStoreHasCMKs(
                texts::key_store_has_keys(id),
            )),
            Err(e) => Err(e.into()),
        }
    }
}
