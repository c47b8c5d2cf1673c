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

    /// The service itself acting on a key (scheduled rotation and deletion): only the
    /// scheduler calls this.
    pub(crate) fn by_service(key: KeyRecord) -> Permitted {
        Permitted {
            key,
            via_grant: None,
        }
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

/// Whether a request has been counted against its quota yet: only authorization charges it,
/// once, whatever it authorizes how often.
#[derive(Debug, Default)]
pub struct Charged(std::sync::atomic::AtomicBool);

impl Charged {
    /// Already charged: another region's side of a request charged in its own region.
    pub(crate) fn already() -> Charged {
        Charged(true.into())
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
        if ctx.quota_charged.0.swap(true, Ordering::Relaxed) {
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
        if ctx.dry_run && action.flags().dry_run && action.ends_authorization() {
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
                return Err(KmsError::AccessDenied(format!(
                    "User: {} is not authorized to perform: {} on resource: {}",
                    me.arn,
                    action.iam(),
                    key.arn()
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
