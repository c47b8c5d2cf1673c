//! Authorization: every operation obtains a [`Permitted`] key (or an [`AccountPermit`]) before it
//! touches key state or material, and only this module can construct one.
//!
//! Decision, as in AWS KMS:
//! 1. An explicit `Deny` in the key policy or in any identity policy of the caller → denied.
//! 2. The key policy allows the caller by name (ARN, or `*`) → allowed (same account).
//! 3. The key policy allows the caller's account root → delegated: the caller's identity
//!    policies must allow too (the account root itself needs nothing more).
//! 4. Cross-account (key in another account): the key policy must allow the caller or its
//!    account, and the caller's identity policies must allow.
//! 5. A grant on the key for the caller whose operations include the action and whose
//!    constraints the request satisfies → allowed.
//! 6. Otherwise → `AccessDeniedException`.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::blob::EncryptionContext;
use super::grants::constraints_hold;
use super::ids::KeyRef;
use super::{Kms, KmsError, RequestContext, Result};
use crate::operations::Action;
use crate::policy::{Context, Evaluation, Policy, PolicyKind, Request};
use crate::store::{KeyRecord, PrincipalKind};

/// A key the caller has been authorized to use for one action.
#[derive(Debug, Clone)]
pub struct Permitted {
    key: KeyRecord,
    /// Set when the permission came from a grant only: that grant's operations and constraints
    /// (CreateGrant delegation may not widen either).
    pub(crate) via_grant: Option<(Vec<String>, Option<String>)>,
}

impl Deref for Permitted {
    type Target = KeyRecord;
    fn deref(&self) -> &KeyRecord {
        &self.key
    }
}

impl Permitted {
    pub(crate) fn into_record(self) -> KeyRecord {
        self.key
    }
}

/// Permission for an action that is not scoped to a key (CreateKey, ListKeys, …).
#[derive(Debug)]
pub struct AccountPermit {
    _private: (),
}

/// What an operation asks for: the action plus the request's condition facts.
pub(crate) struct Op<'a> {
    pub action: Action,
    pub facts: Context,
    pub enc_ctx: Option<&'a EncryptionContext>,
    /// GenerateDataKeyPair*: the pair's spec, whose quota the request counts against.
    pub pair: Option<crate::model::DataKeyPairSpec>,
    /// The key was taken from a ciphertext, not named by the caller: a refusal does not name it.
    pub from_ciphertext: bool,
}

/// What authorization keeps of a request besides its caller: the operation (whose row of the
/// table says whether it takes `DryRun` and where the dry run stops) and whether the request
/// has been counted against its quota — only authorization charges it, once, whatever it
/// authorizes how often. The API makes one per request; `Default` is a request of no
/// operation (the domain driven directly: never a dry run).
#[derive(Debug, Default)]
pub struct Requested {
    operation: Option<crate::operations::Operation>,
    /// The request asked for a dry run and its operation takes one.
    dry_run: bool,
    charged: std::sync::atomic::AtomicBool,
}

impl Requested {
    /// A request for `operation`; `dry_run` reads its `DryRun` member, asked only when the
    /// table says the operation has one.
    pub fn new(
        operation: crate::operations::Operation,
        dry_run: impl FnOnce() -> bool,
    ) -> Requested {
        Requested {
            operation: Some(operation),
            dry_run: operation.flags().dry_run && dry_run(),
            charged: Default::default(),
        }
    }

    /// Charged already: another region's side of a request charged in its own region, or the
    /// service's own work (which no quota counts).
    pub(crate) fn charged() -> Requested {
        Requested {
            charged: true.into(),
            ..Default::default()
        }
    }

    /// Does authorizing `action` end this request's dry run? At the last action its
    /// operation authorizes (the table's order).
    fn stops_at(&self, action: Action) -> bool {
        self.dry_run && self.operation == Some(action.operation()) && action.ends_authorization()
    }
}

impl<'a> Op<'a> {
    pub fn new(action: Action) -> Op<'a> {
        Op {
            action,
            facts: Context::new(),
            enc_ctx: None,
            pair: None,
            from_ciphertext: false,
        }
    }

    /// The key comes from the ciphertext the caller sent (Decrypt, ReEncrypt's source without
    /// a KeyId).
    pub fn key_from_ciphertext(mut self, yes: bool) -> Op<'a> {
        self.from_ciphertext = yes;
        self
    }

    /// A GenerateDataKeyPair(WithoutPlaintext) for this pair spec: the condition fact, and the
    /// spec's own quota.
    pub fn data_key_pair(mut self, spec: crate::model::DataKeyPairSpec) -> Op<'a> {
        self.facts.set("kms:DataKeyPairSpec", spec.as_str());
        self.pair = Some(spec);
        self
    }

    /// Bind the request's encryption context (condition keys and grant constraints).
    pub fn with_context(mut self, ctx: &'a EncryptionContext) -> Op<'a> {
        for (k, v) in ctx {
            self.facts
                .set(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        self.facts
            .set_multi("kms:EncryptionContextKeys", ctx.keys().cloned().collect());
        self.enc_ctx = Some(ctx);
        self
    }

    pub fn fact(mut self, key: &str, value: impl Into<String>) -> Op<'a> {
        self.facts.set(key, value);
        self
    }

    pub fn facts_multi(mut self, key: &str, values: Vec<String>) -> Op<'a> {
        self.facts.set_multi(key, values);
        self
    }
}

/// Parsed key policies, reused while the key's revision is unchanged.
#[derive(Default)]
pub(crate) struct PolicyCache {
    keys: Mutex<HashMap<Uuid, (i64, Arc<Parsed>)>>,
    identity: Mutex<HashMap<String, Arc<Parsed>>>,
}

/// A parsed policy, and whether it uses condition keys whose facts cost store reads (so a
/// request gathers them only when some applicable policy needs them).
pub(crate) struct Parsed {
    policy: Policy,
    needs_aliases: bool,
    needs_tags: bool,
}

impl Parsed {
    fn new(
        text: &str,
        kind: PolicyKind,
    ) -> std::result::Result<Parsed, crate::policy::PolicyError> {
        let policy = Policy::parse(text, kind)?;
        let lower = text.to_ascii_lowercase();
        Ok(Parsed {
            policy,
            needs_aliases: lower.contains("kms:resourcealiases"),
            needs_tags: lower.contains("aws:resourcetag/"),
        })
    }
}

/// Fold the caller's identity policies for an action on a resource.
fn evaluate_all(
    ids: &[Arc<Parsed>],
    ctx: &RequestContext,
    action: &str,
    resource: &str,
    facts: &Context,
) -> Evaluation {
    let req = Request {
        principal_arn: &ctx.principal.arn,
        principal_account: &ctx.principal.account,
        action,
        resource,
        context: facts,
    };
    ids.iter().fold(Evaluation::default(), |acc, p| {
        acc.merge(p.policy.evaluate(&req))
    })
}

fn principal_type(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Role => "AssumedRole",
        PrincipalKind::Root => "Account",
    }
}

fn denied(ctx: &RequestContext, refusal: super::texts::Refusal<'_>) -> KmsError {
    KmsError::AccessDenied(super::texts::access_denied(&ctx.principal.arn, refusal))
}

impl Kms {
    /// Count the request against the quota of `action`'s operation (once per request: the first
    /// authorization of a request charges it).
    fn charge(
        &self,
        ctx: &RequestContext,
        action: Action,
        key: Option<crate::model::KeySpec>,
        pair: Option<crate::model::DataKeyPairSpec>,
    ) -> Result<()> {
        use std::sync::atomic::Ordering;
        if ctx.request.charged.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let group = super::quota::QuotaGroup::of(action.row().quota, key, pair);
        if self.quotas.take(&ctx.principal.account, group) {
            Ok(())
        } else {
            Err(KmsError::Throttling(super::texts::THROTTLED.into()))
        }
    }

    /// A dry run stops at the last authorization of its operation (the table names it), once
    /// that has passed.
    fn stop_if_dry_run(ctx: &RequestContext, action: Action) -> Result<()> {
        if ctx.request.stops_at(action) {
            return Err(KmsError::DryRun(super::texts::DRY_RUN.into()));
        }
        Ok(())
    }

    /// Facts every request carries.
    fn base_facts(&self, ctx: &RequestContext, facts: &mut Context) {
        let p = &ctx.principal;
        facts.set("aws:PrincipalArn", p.arn.clone());
        facts.set("aws:PrincipalAccount", p.account.clone());
        facts.set("aws:PrincipalType", principal_type(p.kind));
        if p.kind != PrincipalKind::Root {
            facts.set("aws:username", p.name.clone());
        }
        facts.set("kms:CallerAccount", p.account.clone());
        if let Some(via) = self.via_services.via_service(&p.arn, &ctx.region) {
            facts.set("kms:ViaService", via);
        }
        let now_ms = self.now();
        facts.set("aws:EpochTime", (now_ms / 1000).to_string());
        if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000) {
            if let Ok(s) = t.format(&time::format_description::well_known::Rfc3339) {
                facts.set("aws:CurrentTime", s);
            }
        }
        facts.set_bool("aws:SecureTransport", ctx.secure_transport);
        facts.set("aws:RequestedRegion", ctx.region.clone());
        if let Some(ip) = &ctx.source_ip {
            facts.set("aws:SourceIp", ip.clone());
        }
    }

    fn identity_policies(&self, ctx: &RequestContext) -> Result<Vec<Arc<Parsed>>> {
        let mut cache = self
            .policies
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        let mut out = Vec::with_capacity(ctx.identity_policies.len());
        for rec in ctx.identity_policies.iter() {
            let p = match cache.get(&rec.document) {
                Some(p) => p.clone(),
                None => {
                    let p = Arc::new(Parsed::new(&rec.document, PolicyKind::Identity).map_err(
                        |e| {
                            KmsError::Internal(format!(
                                "stored identity policy {} of {} is invalid: {e}",
                                rec.name, rec.principal_arn
                            ))
                        },
                    )?);
                    cache.insert(rec.document.clone(), p.clone());
                    p
                }
            };
            out.push(p);
        }
        Ok(out)
    }

    fn key_policy(&self, key: &KeyRecord) -> Result<Arc<Parsed>> {
        let mut cache = self.policies.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rev, p)) = cache.get(&key.key_id) {
            if *rev == key.revision {
                return Ok(p.clone());
            }
        }
        let p = Arc::new(Parsed::new(&key.policy, PolicyKind::Key).map_err(|e| {
            KmsError::Internal(format!(
                "stored key policy of {} is invalid: {e}",
                key.key_id
            ))
        })?);
        cache.insert(key.key_id, (key.revision, p.clone()));
        Ok(p)
    }

    /// Evaluate the caller's identity policies for an action on a resource.
    fn evaluate_identity(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
        facts: &Context,
    ) -> Result<Evaluation> {
        let ids = self.identity_policies(ctx)?;
        Ok(evaluate_all(&ids, ctx, action, resource, facts))
    }

    /// Look up the key a request names and authorize the operation on it.
    pub(crate) async fn resolve(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        mut op: Op<'_>,
    ) -> Result<Permitted> {
        if key.is_alias() {
            if !op.action.flags().alias {
                return Err(KmsError::InvalidArn(
                    super::texts::ALIAS_NOT_SUPPORTED.into(),
                ));
            }
            let name = match key {
                KeyRef::Alias(a) | KeyRef::AliasArn { alias: a, .. } => a.as_str().to_owned(),
                _ => String::new(),
            };
            op.facts.set("kms:RequestAlias", name);
        }
        let record = self
            .lookup(ctx, key, op.action.flags().other_account)
            .await?;
        self.authorize(ctx, record, op).await
    }

    /// Authorize an operation on a key already looked up (e.g. from a ciphertext blob).
    pub(crate) async fn authorize(
        &self,
        ctx: &RequestContext,
        key: KeyRecord,
        mut op: Op<'_>,
    ) -> Result<Permitted> {
        self.charge(ctx, op.action, Some(key.key_spec), op.pair)?;
        let arn = key.arn();
        self.base_facts(ctx, &mut op.facts);
        op.facts.set("kms:KeySpec", key.key_spec.as_str());
        op.facts
            .set("kms:CustomerMasterKeySpec", key.key_spec.as_str());
        op.facts.set("kms:KeyUsage", key.key_usage.as_str());
        op.facts
            .set("kms:CustomerMasterKeyUsage", key.key_usage.as_str());
        op.facts.set("kms:KeyOrigin", key.origin.as_str());
        op.facts
            .set_bool("kms:MultiRegion", key.multi_region.is_some());
        if key.multi_region.is_some() {
            let kind = if key.is_primary() {
                "PRIMARY"
            } else {
                "REPLICA"
            };
            op.facts.set("kms:MultiRegionKeyType", kind);
        }
        let key_policy = self.key_policy(&key)?;
        let ids = self.identity_policies(ctx)?;
        let needed = |f: fn(&Parsed) -> bool| f(&key_policy) || ids.iter().any(|p| f(p));
        if needed(|p| p.needs_aliases) {
            let aliases = self
                .store
                .list_aliases(&key.region, &key.account, Some(key.key_id), None, 1000)
                .await?;
            op.facts.set_multi(
                "kms:ResourceAliases",
                aliases.into_iter().map(|a| a.name).collect(),
            );
        }
        if needed(|p| p.needs_tags) {
            for t in self.store.list_tags(key.key_id).await? {
                op.facts.set(&format!("aws:ResourceTag/{}", t.key), t.value);
            }
        }

        let req = Request {
            principal_arn: &ctx.principal.arn,
            principal_account: &ctx.principal.account,
            action: op.action.iam(),
            resource: &arn,
            context: &op.facts,
        };
        let key_eval = key_policy.policy.evaluate(&req);
        let id_eval = evaluate_all(&ids, ctx, op.action.iam(), &arn, &op.facts);
        use super::texts::{Denial, Refusal};
        let on = |why| {
            if op.from_ciphertext {
                Refusal::Ciphertext(op.action.iam(), why)
            } else {
                Refusal::Key(op.action.iam(), &arn, why)
            }
        };
        if key_eval.explicit_deny || id_eval.explicit_deny {
            let why = if key_eval.explicit_deny {
                Denial::ExplicitResource
            } else {
                Denial::ExplicitIdentity
            };
            return Err(denied(ctx, on(why)));
        }
        let same_account = key.account == ctx.principal.account;
        let is_root = ctx.principal.kind == PrincipalKind::Root;
        let identity_ok = is_root || id_eval.allow_direct;
        let allowed = if same_account {
            key_eval.allow_direct || (key_eval.allow_via_account && identity_ok)
        } else {
            (key_eval.allow_direct || key_eval.allow_via_account) && identity_ok
        };
        if allowed {
            Self::stop_if_dry_run(ctx, op.action)?;
            return Ok(Permitted {
                key,
                via_grant: None,
            });
        }
        if op.action.flags().grant {
            let name = op.action.name();
            let grants = self
                .store
                .grants_for_key(key.key_id, Some(&ctx.principal.arn))
                .await?;
            if let Some(g) = grants.iter().find(|g| {
                g.operations.iter().any(|o| o == name)
                    && constraints_hold(g.constraints.as_deref(), op.enc_ctx)
            }) {
                Self::stop_if_dry_run(ctx, op.action)?;
                return Ok(Permitted {
                    key,
                    via_grant: Some((g.operations.clone(), g.constraints.clone())),
                });
            }
        }
        if !same_account {
            return Err(denied(ctx, Refusal::OtherAccount(op.action.iam())));
        }
        // The key policy hands the decision to IAM, which does not allow it; or it does not
        // allow the caller at all.
        let why = if key_eval.allow_via_account {
            Denial::NoIdentityPolicy
        } else {
            Denial::NoResourcePolicy
        };
        Err(denied(ctx, on(why)))
    }

    /// Authorize an action that is not scoped to a key: identity policies only.
    pub(crate) fn authorize_account(
        &self,
        ctx: &RequestContext,
        action: Action,
        resource: &str,
        mut facts: Context,
    ) -> Result<AccountPermit> {
        self.charge(ctx, action, None, None)?;
        self.base_facts(ctx, &mut facts);
        let eval = self.evaluate_identity(ctx, action.iam(), resource, &facts)?;
        let action_name = action.iam();
        use super::texts::{Denial, Refusal};
        if eval.explicit_deny {
            return Err(denied(
                ctx,
                Refusal::Key(action_name, resource, Denial::ExplicitIdentity),
            ));
        }
        if ctx.principal.kind == PrincipalKind::Root || eval.allow_direct {
            Self::stop_if_dry_run(ctx, action)?;
            return Ok(AccountPermit { _private: () });
        }
        Err(denied(
            ctx,
            Refusal::Key(action_name, resource, Denial::NoIdentityPolicy),
        ))
    }

    /// RetireGrant: the grant's retiring principal, its grantee when the grant allows
    /// RetireGrant, and the issuing account's root may retire it; so may a caller whose
    /// identity policies allow `kms:RetireGrant`, for keys of its own account.
    pub(crate) fn authorize_retire(
        &self,
        ctx: &RequestContext,
        grant: &crate::store::GrantRecord,
        key: KeyRecord,
    ) -> Result<Permitted> {
        let action = Action::RetireGrant;
        let me = &ctx.principal;
        let may = grant.retiring_principal.as_deref() == Some(me.arn.as_str())
            || (grant.grantee_principal == me.arn
                && grant.operations.iter().any(|o| o == action.name()))
            || (me.kind == PrincipalKind::Root && grant.issuing_account == me.arn);
        if may {
            self.charge(ctx, action, None, None)?;
            Self::stop_if_dry_run(ctx, action)?;
        } else {
            if key.account != me.account {
                return Err(KmsError::AccessDenied(super::texts::access_denied(
                    &me.arn,
                    super::texts::Refusal::Key(
                        action.iam(),
                        &key.arn(),
                        super::texts::Denial::NoResourcePolicy,
                    ),
                )));
            }
            self.authorize_account(ctx, action, &key.arn(), Context::new())?;
        }
        Ok(Permitted {
            key,
            via_grant: None,
        })
    }

    /// Would `policy` let `ctx`'s caller call PutKeyPolicy on `key` later? (Lockout check.)
    pub(crate) fn policy_allows_put_key_policy(
        &self,
        ctx: &RequestContext,
        key: &KeyRecord,
        policy: &Policy,
    ) -> Result<bool> {
        let arn = key.arn();
        let mut facts = Context::new();
        self.base_facts(ctx, &mut facts);
        let req = Request {
            principal_arn: &ctx.principal.arn,
            principal_account: &ctx.principal.account,
            action: Action::PutKeyPolicy.iam(),
            resource: &arn,
            context: &facts,
        };
        let e = policy.evaluate(&req);
        if e.explicit_deny {
            return Ok(false);
        }
        let id = self.evaluate_identity(ctx, Action::PutKeyPolicy.iam(), &arn, &facts)?;
        let identity_ok = ctx.principal.kind == PrincipalKind::Root || id.allow_direct;
        Ok(e.allow_direct || (e.allow_via_account && identity_ok))
    }
}

// ---------------------------------------------------------------------------------------------
// Permits: the only way to a token.
//
// `Kms` keeps its tokens in a [`Tokens`], whose fields are private to this module. Nothing
// else in the domain can name a `Token` of the service: a key's objects are reached through
// the [`KeyToken`] of a [`Permitted`] (which only authorization makes), account-scoped calls
// (random bytes, a new key's objects, a key store's sealed password) through the
// [`AccountToken`] of an [`AccountPermit`], and the service's own work (start-up,
// reconciliation, the scheduler's jobs, AWS managed keys made on first use) through a
// [`ServicePermit`], made in one place (`Kms::service_permit`).

use crate::token::{
    Capabilities, ExportedPair, HashAlg, ImportWrap, ImportedKind, ImportedPair, InvalidMaterial,
    PairSpec, PairUse, PublicParts, Result as TokenResult, SignMech, Token, TokenError,
};
use std::sync::RwLock;
use zeroize::Zeroizing;

/// The tokens key material lives in: the service's own and the connected custom key stores'.
/// Reached only through a permit (see above).
pub struct Tokens {
    default: Token,
    stores: RwLock<HashMap<String, Token>>,
}

impl Tokens {
    pub(super) fn new(default: Token) -> Tokens {
        Tokens {
            default,
            stores: RwLock::new(HashMap::new()),
        }
    }

    /// What the service's token can do (mechanisms, sizes, curves): no object is touched.
    pub fn capabilities(&self) -> &Capabilities {
        self.default.capabilities()
    }

    /// Readiness: the service's token session is usable.
    pub(super) async fn check(&self) -> TokenResult<()> {
        self.default.check().await
    }

    fn stores(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Token>> {
        self.stores.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Is this custom key store connected (its token open)?
    pub(super) fn is_connected(&self, store: &str) -> bool {
        self.stores().contains_key(store)
    }

    /// A custom key store's token was opened: its keys are usable.
    pub(super) fn connect(&self, store: String, token: Token) {
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(store, token);
    }

    /// Close a custom key store's token; whether it was connected.
    pub(super) fn disconnect(&self, store: &str) -> bool {
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(store)
            .is_some()
    }

    /// The token holding a key's material: the service's, or its connected custom key store's.
    fn holding(&self, key: &KeyRecord) -> Result<Token> {
        match &key.custom_key_store_id {
            None => Ok(self.default.clone()),
            Some(id) => self
                .stores()
                .get(id)
                .cloned()
                .ok_or_else(|| KmsError::InvalidState(super::texts::unavailable(&key.arn()))),
        }
    }

    /// Does the token holding `key` know its current material to be gone (no token call: the
    /// objects reconciliation and failed uses found missing)?
    pub(super) fn misses_current(&self, key: &KeyRecord) -> bool {
        self.holding(key).is_ok_and(|t| {
            t.is_missing(&super::token_object_id(
                &key.key_id,
                key.current_version as u32,
            ))
        })
    }
}

impl Kms {
    /// One key's token handle: its objects, and for a multi-Region key its set's members in the
    /// served regions (a rotation or a replica copies the material between them).
    fn key_token(&self, key: &KeyRecord) -> Result<KeyToken> {
        let mut owners = vec![key.key_id];
        if let Some(m) = &key.multi_region {
            owners.extend(
                self.regions
                    .iter()
                    .map(|r| super::ids::mrk_row_id(&m.mrk, r)),
            );
        }
        Ok(KeyToken {
            token: self.token.holding(key)?,
            service: self.token.default.clone(),
            owners,
        })
    }

    /// The service's own permit: for what the service does by itself, not for a caller — the
    /// one place a [`ServicePermit`] is made. Its users (checked by a test below): start-up
    /// (`keystores::restore_key_stores`), reconciliation (`reconcile`), the scheduler's jobs
    /// (`scheduler`: rotation, deletion, expiry of imported material), and the AWS managed
    /// keys the service creates on first use (`managed`). A request handler never calls it: it
    /// holds a `Permitted` or an `AccountPermit` from the functions above.
    pub(super) fn service_permit(&self) -> ServicePermit {
        ServicePermit { _private: () }
    }
}

impl Permitted {
    /// The authorized key's token handle (`InvalidStateException` while its custom key store is
    /// disconnected).
    ///
    /// Token access for a key exists only through a permit. With one, a key-scoped call
    /// compiles:
    /// ```
    /// # use kms_bridge::kms::{Kms, Permitted};
    /// async fn public_key(kms: &Kms, key: &Permitted) {
    ///     let id = kms_bridge::kms::token_object_id(&key.key_id, 1);
    ///     let _ = key.token(kms).unwrap().public_key(id).await;
    /// }
    /// ```
    /// Without one there is no token to call — the tokens' fields are private to `kms::authz`,
    /// and a permit cannot be made elsewhere:
    /// ```compile_fail
    /// # use kms_bridge::kms::Kms;
    /// # use kms_bridge::store::KeyRecord;
    /// async fn public_key(kms: &Kms, key: &KeyRecord) {
    ///     let id = kms_bridge::kms::token_object_id(&key.key_id, 1);
    ///     let _ = kms.tokens().default.public_key(id).await;
    /// }
    /// ```
    /// ```compile_fail
    /// # use kms_bridge::kms::{Kms, Permitted};
    /// # use kms_bridge::store::KeyRecord;
    /// async fn public_key(kms: &Kms, key: KeyRecord) {
    ///     let forged = Permitted { key, via_grant: None };
    ///     let id = kms_bridge::kms::token_object_id(&forged.key_id, 1);
    ///     let _ = forged.token(kms).unwrap().public_key(id).await;
    /// }
    /// ```
    pub fn token(&self, kms: &Kms) -> Result<KeyToken> {
        kms.key_token(&self.key)
    }

    /// Random bytes from the service's token (a grant's id and token; no key is touched).
    pub async fn random(&self, kms: &Kms, len: usize) -> Result<Zeroizing<Vec<u8>>> {
        Ok(kms.token.default.random(len).await?)
    }
}

impl AccountPermit {
    /// The service's token, for account-scoped calls.
    pub fn token(&self, kms: &Kms) -> AccountToken {
        AccountToken {
            token: kms.token.default.clone(),
            service: kms.token.default.clone(),
        }
    }

    /// A connected custom key store's token, for account-scoped calls (CreateKey,
    /// GenerateRandom in that store).
    pub fn store_token(&self, kms: &Kms, store: &str) -> Option<AccountToken> {
        let token = kms.token.stores().get(store).cloned()?;
        Some(AccountToken {
            token,
            service: kms.token.default.clone(),
        })
    }
}

/// The service acting by itself (see `Kms::service_permit`, the one place it is made).
#[derive(Debug)]
pub struct ServicePermit {
    _private: (),
}

impl ServicePermit {
    /// The service's token, whole: reconciliation compares it with the store object by object.
    pub(super) fn token<'k>(&self, kms: &'k Kms) -> &'k Token {
        &kms.token.default
    }

    /// A key's token handle, for a job of the service on that key.
    pub(super) fn key_token(&self, kms: &Kms, key: &KeyRecord) -> Result<KeyToken> {
        kms.key_token(key)
    }

    /// The service's permission on a key (scheduled rotation).
    pub(super) fn permit(&self, key: KeyRecord) -> Permitted {
        Permitted {
            key,
            via_grant: None,
        }
    }

    /// The service's permission for account-scoped calls (an AWS managed key's creation, a key
    /// store's password at start-up).
    pub(super) fn account(&self) -> AccountPermit {
        AccountPermit { _private: () }
    }
}

/// One key's objects in the token holding them. Made only from a permit; every call names an
/// object of the key (its id begins with the key's id) or is refused
/// (`TokenError::OutOfScope`) before the token is asked.
pub struct KeyToken {
    token: Token,
    /// The service's token: random bytes, data key pairs, the import-token MAC key.
    service: Token,
    /// The key ids whose objects it reaches: the key's, and for a multi-Region key its set's.
    owners: Vec<Uuid>,
}

impl std::fmt::Debug for KeyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyToken")
            .field("owners", &self.owners)
            .finish_non_exhaustive()
    }
}

/// Is `id` an object of one of `owners` (its first 16 bytes are the key id: its versions are
/// `key id ‖ version`, its import wrapping keys `key id ‖ "wrap" ‖ 8 bytes`)?
fn owned_by(owners: &[Uuid], id: &[u8]) -> bool {
    id.get(..16)
        .and_then(|p| Uuid::from_slice(p).ok())
        .is_some_and(|o| owners.contains(&o))
}

/// `KeyToken`'s calls on one object of the key: the id checked, then the token's call.
macro_rules! key_scoped {
    ($( $(#[$doc:meta])* fn $name:ident(id $(, $arg:ident: $ty:ty)*) -> $ret:ty; )+) => {
        impl KeyToken {
            $(
                $(#[$doc])*
                pub async fn $name(&self, id: Vec<u8> $(, $arg: $ty)*) -> TokenResult<$ret> {
                    let id = self.own(id)?;
                    self.token.$name(id $(, $arg)*).await
                }
            )+
        }
    };
}

key_scoped! {
    fn encrypt_gcm(id, aad: Vec<u8>, plaintext: Zeroizing<Vec<u8>>) -> ([u8; crate::token::GCM_IV_LEN], Vec<u8>);
    fn decrypt_gcm(id, iv: [u8; crate::token::GCM_IV_LEN], aad: Vec<u8>, ciphertext: Vec<u8>) -> Zeroizing<Vec<u8>>;
    fn sign(id, mech: SignMech, input: Vec<u8>) -> Vec<u8>;
    fn public_key(id) -> PublicParts;
    fn rsa_oaep_encrypt(id, hash: HashAlg, plaintext: Zeroizing<Vec<u8>>) -> Option<Vec<u8>>;
    fn rsa_oaep_decrypt(id, hash: HashAlg, ciphertext: Vec<u8>) -> Option<Zeroizing<Vec<u8>>>;
    fn rsa_private_raw(id, block: Vec<u8>) -> Zeroizing<Vec<u8>>;
    fn rsa_public_raw(id, block: Zeroizing<Vec<u8>>) -> Vec<u8>;
    fn ecdh(id, peer_point: Vec<u8>) -> Zeroizing<Vec<u8>>;
    fn ml_kem_encapsulate(id) -> (Vec<u8>, Zeroizing<Vec<u8>>);
    fn ml_kem_decapsulate(id, ciphertext: Vec<u8>) -> Zeroizing<Vec<u8>>;
    /// A new version's material (rotation).
    fn generate_aes_key(id, label: String) -> ();
    /// An import's wrapping key pair.
    fn generate_wrapping_pair(id, label: String, bits: u32, hash: HashAlg) -> Option<PublicParts>;
    fn destroy(id) -> ();
}

impl KeyToken {
    fn own(&self, id: Vec<u8>) -> TokenResult<Vec<u8>> {
        if owned_by(&self.owners, &id) {
            Ok(id)
        } else {
            Err(TokenError::OutOfScope(hex::encode(&id)))
        }
    }

    /// What the token holding the key can do.
    pub fn capabilities(&self) -> &Capabilities {
        self.token.capabilities()
    }

    /// Copy one version's material to another member of the key's multi-Region set.
    pub async fn copy_key(&self, from: Vec<u8>, to: Vec<u8>, label: String) -> TokenResult<()> {
        let (from, to) = (self.own(from)?, self.own(to)?);
        self.token.copy_key(from, to, label).await
    }

    /// Unwrap imported secret material with the key's wrapping key into its object `id`.
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
    ) -> TokenResult<Vec<u8>> {
        let (wrapping_id, id) = (self.own(wrapping_id)?, self.own(id)?);
        self.token
            .unwrap_import(wrapping_id, wrap, wrapped, kind, id, label, persistent)
            .await
    }

    /// Unwrap an imported private key with the key's wrapping key into its object `id`.
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
    ) -> TokenResult<std::result::Result<PublicParts, InvalidMaterial>> {
        let (wrapping_id, id) = (self.own(wrapping_id)?, self.own(id)?);
        self.token
            .unwrap_import_pair(
                wrapping_id,
                wrap,
                wrapped,
                pair,
                usage,
                id,
                label,
                persistent,
            )
            .await
    }

    /// Verify a signature with the key's public key object `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn verify_signature(
        &self,
        spec: crate::model::KeySpec,
        id: Vec<u8>,
        alg: crate::model::SigningAlgorithm,
        message_type: crate::model::MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        let id = self.own(id)?;
        super::verify_signature(&self.token, spec, id, alg, message_type, message, signature).await
    }

    /// The MAC of `message` with the key's HMAC object `id`.
    pub async fn mac(
        &self,
        id: Vec<u8>,
        alg: crate::model::MacAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        let id = self.own(id)?;
        super::asymmetric::compute_mac(&self.token, id, alg, message).await
    }

    /// Verify a MAC with the key's HMAC object `id`.
    pub async fn verify_mac(
        &self,
        id: Vec<u8>,
        alg: crate::model::MacAlgorithm,
        message: &[u8],
        mac: &[u8],
    ) -> Result<()> {
        let id = self.own(id)?;
        super::verify_mac(&self.token, id, alg, message, mac).await
    }

    /// Random bytes from the service's token (a data key, an OAEP seed, an import nonce).
    pub async fn random(&self, len: usize) -> TokenResult<Zeroizing<Vec<u8>>> {
        self.service.random(len).await
    }

    /// A data key pair, made in the service's token and exported.
    pub async fn generate_exportable_pair(&self, spec: PairSpec) -> TokenResult<ExportedPair> {
        self.service.generate_exportable_pair(spec).await
    }

    /// Create the import-token MAC key (a system object) unless it exists; whether it was made.
    pub(super) async fn ensure_import_mac_key(&self, label: &str) -> TokenResult<bool> {
        self.service
            .ensure_hmac_key(super::IMPORT_MAC_KEY_ID, label, 32)
            .await
    }

    /// An import token's MAC, by the import-token MAC key.
    pub(super) async fn import_mac(&self, input: Vec<u8>) -> TokenResult<Vec<u8>> {
        self.service
            .hmac(super::IMPORT_MAC_KEY_ID.to_vec(), HashAlg::Sha256, input)
            .await
    }
}

/// The token for account-scoped calls: random bytes, a new key's objects, the sealing of a
/// custom key store's password by the service's credential key. Made only from an
/// [`AccountPermit`].
pub struct AccountToken {
    token: Token,
    service: Token,
}

impl AccountToken {
    pub fn capabilities(&self) -> &Capabilities {
        self.token.capabilities()
    }

    pub async fn random(&self, len: usize) -> TokenResult<Zeroizing<Vec<u8>>> {
        self.token.random(len).await
    }

    /// A new key's symmetric material.
    pub async fn generate_aes_key(&self, id: Vec<u8>, label: String) -> TokenResult<()> {
        self.token.generate_aes_key(id, label).await
    }

    /// A new key's key pair.
    pub async fn generate_key_pair(
        &self,
        id: Vec<u8>,
        label: String,
        spec: PairSpec,
        usage: PairUse,
    ) -> TokenResult<()> {
        self.token.generate_key_pair(id, label, spec, usage).await
    }

    /// A new key's HMAC key.
    pub async fn generate_hmac_key(
        &self,
        id: Vec<u8>,
        label: String,
        len: usize,
    ) -> TokenResult<()> {
        self.token.generate_hmac_key(id, label, len).await
    }

    /// Seal a custom key store's password with the service's credential key.
    pub(super) async fn seal_credential(
        &self,
        aad: Vec<u8>,
        secret: Zeroizing<Vec<u8>>,
    ) -> TokenResult<Vec<u8>> {
        self.service
            .seal(crate::auth::principals::SEAL_KEY_ID.to_vec(), aad, secret)
            .await
    }

    /// Unseal a custom key store's password.
    pub(super) async fn unseal_credential(
        &self,
        aad: Vec<u8>,
        sealed: &[u8],
    ) -> TokenResult<Zeroizing<Vec<u8>>> {
        self.service
            .unseal(crate::auth::principals::SEAL_KEY_ID.to_vec(), aad, sealed)
            .await
    }
}

#[cfg(test)]
mod permit_tests {
    use super::*;

    /// A key token reaches its key's versions and wrapping keys, and its multi-Region set's
    /// members; nothing else (another key's objects, the service's system objects).
    #[test]
    fn key_tokens_reach_only_their_keys_objects() {
        let (key, other, mrk) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let member = crate::kms::ids::mrk_row_id(&mrk, "eu-west-1");
        let owners = [key, member];
        let mut wrapping = key.as_bytes().to_vec();
        wrapping.extend_from_slice(b"wrap12345678");
        assert!(owned_by(&owners, &crate::kms::token_object_id(&key, 3)));
        assert!(owned_by(&owners, &wrapping));
        assert!(owned_by(&owners, &crate::kms::token_object_id(&member, 1)));
        assert!(!owned_by(&owners, &crate::kms::token_object_id(&other, 1)));
        assert!(!owned_by(&owners, crate::kms::IMPORT_MAC_KEY_ID));
        assert!(!owned_by(&owners, crate::auth::principals::SEAL_KEY_ID));
        assert!(!owned_by(&owners, &key.as_bytes()[..15]));
    }

    /// `Kms::service_permit` is called only by the service's own work (its doc lists them): a
    /// request handler that reached for it would be skipping authorization.
    #[test]
    fn service_permit_is_made_only_for_the_services_own_work() {
        let allowed = [
            "authz.rs",
            "keystores.rs",
            "reconcile.rs",
            "scheduler.rs",
            "managed.rs",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![dir];
        let mut callers = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("src").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).expect("source");
                    if text.contains("service_permit()") {
                        callers.push(p.file_name().unwrap().to_string_lossy().into_owned());
                    }
                }
            }
        }
        callers.sort();
        for c in &callers {
            assert!(allowed.contains(&c.as_str()), "{c} makes a ServicePermit");
        }
        assert!(callers.len() > 1, "the scan found the callers: {callers:?}");
    }
}
