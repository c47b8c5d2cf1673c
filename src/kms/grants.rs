//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
//!
//! A grant allows one grantee principal exactly its operations on one key, under optional
//! encryption-context constraints. This server is strongly consistent, so a grant works (and a
//! retired or revoked one stops working) at once; grant tokens are still issued and validated.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::authz::{Op, Permitted};
use super::blob::EncryptionContext;
use super::ids::KeyRef;
use super::{page_limit, state_error, texts, Kms, KmsError, Page, RequestContext, Result};
use crate::model::{KeySpec, KeyState, KeyUsage};
use crate::operations::{grant_operations, Action};
use crate::store::{GrantRecord, StoreError};

pub const MAX_GRANTS_PER_KEY: i64 = 50_000;
const TOKEN_MAGIC: &[u8] = b"KBGT1";

/// `EncryptionContextEquals` / `EncryptionContextSubset`, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrantConstraints {
    #[serde(
        rename = "EncryptionContextSubset",
        skip_serializing_if = "Option::is_none"
    )]
    pub subset: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "EncryptionContextEquals",
        skip_serializing_if = "Option::is_none"
    )]
    pub equals: Option<BTreeMap<String, String>>,
}

pub struct CreateGrantInput {
    pub key: KeyRef,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    pub operations: Vec<String>,
    pub constraints: Option<GrantConstraints>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GrantInfo {
    pub key_arn: String,
    pub record: GrantRecord,
}

impl GrantInfo {
    pub fn constraints(&self) -> Option<GrantConstraints> {
        self.record
            .constraints
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
    }
}

fn lower_keys(m: &BTreeMap<String, String>) -> BTreeMap<String, &str> {
    m.iter()
        .map(|(k, v)| (k.to_lowercase(), v.as_str()))
        .collect()
}

/// Do a grant's constraints allow a request with this encryption context? Constraint keys
/// compare case-insensitively, values exactly. Operations without an encryption context
/// (`enc_ctx` None) are not constrained.
pub(crate) fn constraints_hold(
    constraints: Option<&str>,
    enc_ctx: Option<&EncryptionContext>,
) -> bool {
    let Some(json) = constraints else {
        return true;
    };
    let Ok(c) = serde_json::from_str::<GrantConstraints>(json) else {
        return false;
    };
    let Some(ctx) = enc_ctx else {
        return true;
    };
    let req = lower_keys(ctx);
    if let Some(eq) = &c.equals {
        if lower_keys(eq) != req {
            return false;
        }
    }
    if let Some(sub) = &c.subset {
        if !lower_keys(sub).iter().all(|(k, v)| req.get(k) == Some(v)) {
            return false;
        }
    }
    true
}

/// Is a child grant's constraint at least as strict as its parent's? Parent Equals E → child
/// Equals E; parent Subset S → child Subset ⊇ S or child Equals ⊇ S. (Keys compare
/// case-insensitively, as in `constraints_hold`.)
fn at_least_as_strict(child: Option<&GrantConstraints>, parent: Option<&str>) -> bool {
    let Some(parent) = parent else {
        return true;
    };
    let Ok(parent) = serde_json::from_str::<GrantConstraints>(parent) else {
        return false;
    };
    let child = child.cloned().unwrap_or_default();
    let contains = |big: &BTreeMap<String, String>, small: &BTreeMap<String, String>| {
        let big = lower_keys(big);
        lower_keys(small).iter().all(|(k, v)| big.get(k) == Some(v))
    };
    if let Some(pe) = &parent.equals {
        return child
            .equals
            .as_ref()
            .is_some_and(|ce| lower_keys(ce) == lower_keys(pe));
    }
    if let Some(ps) = &parent.subset {
        return child.equals.as_ref().is_some_and(|ce| contains(ce, ps))
            || child.subset.as_ref().is_some_and(|cs| contains(cs, ps));
    }
    true
}

/// Reject malformed grant tokens (`InvalidGrantTokenException`).
pub fn validate_grant_tokens(tokens: &[String]) -> Result<()> {
    for t in tokens {
        grant_id_from_token(t)?;
    }
    Ok(())
}

fn grant_id_from_token(token: &str) -> Result<String> {
    let invalid = || KmsError::InvalidGrantToken(texts::INVALID_GRANT_TOKEN.into());
    let raw = B64.decode(token.as_bytes()).map_err(|_| invalid())?;
    if raw.len() != TOKEN_MAGIC.len() + 32 + 16 || !raw.starts_with(TOKEN_MAGIC) {
        return Err(invalid());
    }
    Ok(hex::encode(&raw[TOKEN_MAGIC.len()..TOKEN_MAGIC.len() + 32]))
}

/// A grantee or retiring principal: an account id or an IAM principal ARN.
fn validate_principal(p: &str, member: &str) -> Result<()> {
    let account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = account(p)
        || p.strip_prefix("arn:aws:iam::")
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(acct, res)| {
                account(acct)
                    && (res == "root"
                        || res.strip_prefix("user/").is_some_and(|n| !n.is_empty())
                        || res.strip_prefix("role/").is_some_and(|n| !n.is_empty())
                        || res
                            .strip_prefix("assumed-role/")
                            .is_some_and(|n| !n.is_empty()))
            });
    if ok {
        Ok(())
    } else {
        Err(KmsError::Validation(texts::invalid_principal(member, p)))
    }
}

/// The account of a principal given as an account id or an IAM ARN.
fn principal_account(p: &str) -> &str {
    p.strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split(':').next())
        .unwrap_or(p)
}

/// Grant operations valid for a key, as AWS allows them per key type.
fn operations_for(spec: KeySpec, usage: KeyUsage) -> &'static [&'static str] {
    const COMMON: [&str; 3] = ["CreateGrant", "RetireGrant", "DescribeKey"];
    const SYMMETRIC: &[&str] = &[
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        COMMON[0],
        COMMON[1],
        COMMON[2],
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    ];
    const ASYMMETRIC_ENCRYPTION: &[&str] = &[
        "Decrypt",
        "Encrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GetPublicKey",
        COMMON[0],
        COMMON[1],
        COMMON[2],
    ];
    const SIGNING: &[&str] = &[
        "Sign",
        "Verify",
        "GetPublicKey",
        COMMON[0],
        COMMON[1],
        COMMON[2],
    ];
    const MAC: &[&str] = &["GenerateMac", "VerifyMac", COMMON[0], COMMON[1], COMMON[2]];
    match (spec, usage) {
        (KeySpec::SymmetricDefault, _) => SYMMETRIC,
        (_, KeyUsage::EncryptDecrypt) => ASYMMETRIC_ENCRYPTION,
        (_, KeyUsage::SignVerify) => SIGNING,
        (_, KeyUsage::GenerateVerifyMac) => MAC,
        _ => &COMMON,
    }
}

impl Kms {
    pub async fn create_grant(
        &self,
        ctx: &RequestContext,
        input: CreateGrantInput,
    ) -> Result<(String, String)> {
        if input.operations.is_empty() {
            return Err(KmsError::Validation(texts::OPERATIONS_EMPTY.into()));
        }
        if input.operations.iter().all(|o| o == "CreateGrant") {
            return Err(KmsError::Validation(texts::GRANT_ONLY_CREATE_GRANT.into()));
        }
        // (The API's model check refuses these first, listing the model's order.)
        for (i, op) in input.operations.iter().enumerate() {
            if Action::from_grant_operation(op).is_none() {
                let allowed: Vec<&str> = grant_operations().collect();
                return Err(KmsError::Validation(texts::grant_operation_unknown(
                    i + 1,
                    op,
                    &allowed,
                )));
            }
        }
        validate_principal(&input.grantee_principal, "GranteePrincipal")?;
        if let Some(r) = &input.retiring_principal {
            validate_principal(r, "RetiringPrincipal")?;
        }
        if let Some(name) = &input.name {
            let what = if name.is_empty() {
                Some(texts::length_at_least(1))
            } else if name.chars().count() > 256 {
                Some(texts::length_at_most(256))
            } else if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
            {
                Some(texts::pattern(texts::NAME_PATTERN))
            } else {
                None
            };
            if let Some(what) = what {
                return Err(KmsError::Validation(texts::grant_name_constraint(
                    name, &what,
                )));
            }
        }
        let constraint_type = match &input.constraints {
            Some(c) => {
                for m in [&c.equals, &c.subset].into_iter().flatten() {
                    if m.len() > 8 || m.values().any(|v| v.chars().count() > 384) {
                        return Err(KmsError::Validation(texts::GRANT_CONSTRAINT_LIMITS.into()));
                    }
                }
                match (&c.equals, &c.subset) {
                    (Some(_), _) => Some("EncryptionContextEquals"),
                    (None, Some(_)) => Some("EncryptionContextSubset"),
                    (None, None) => None,
                }
            }
            None => None,
        };
        let mut op = Op::new(Action::CreateGrant)
            .facts_multi("kms:GrantOperations", input.operations.clone())
            .fact("kms:GranteePrincipal", input.grantee_principal.clone())
            .fact("kms:GrantIsForAWSResource", "false");
        if let Some(r) = &input.retiring_principal {
            op = op.fact("kms:RetiringPrincipal", r.clone());
        }
        if let Some(t) = constraint_type {
            op = op.fact("kms:GrantConstraintType", t);
        }
        let key = self.resolve(ctx, &input.key, op).await?;
        if let Some((parent_ops, parent_constraints)) = &key.via_grant {
            if !input.operations.iter().all(|o| parent_ops.contains(o)) {
                return Err(KmsError::AccessDenied(texts::grant_delegation_operations(
                    &ctx.principal.arn,
                    &parent_ops.join(", "),
                )));
            }
            if !at_least_as_strict(input.constraints.as_ref(), parent_constraints.as_deref()) {
                return Err(KmsError::AccessDenied(texts::grant_delegation_constraints(
                    &ctx.principal.arn,
                )));
            }
        }
        match key.state {
            KeyState::Enabled | KeyState::Unavailable | KeyState::Updating => {}
            s => return Err(state_error(&key.arn(), s)),
        }
        let allowed = operations_for(key.key_spec, key.key_usage);
        if let Some(bad) = input
            .operations
            .iter()
            .find(|o| !allowed.contains(&o.as_str()))
        {
            return Err(KmsError::Validation(texts::grant_operation_not_for_key(
                bad,
                key.key_spec.as_str(),
            )));
        }
        let constraints = input
            .constraints
            .as_ref()
            .filter(|c| c.equals.is_some() || c.subset.is_some())
            .map(|c| serde_json::to_string(c).map_err(|e| KmsError::Internal(e.to_string())))
            .transpose()?;
        let mut ops = input.operations.clone();
        ops.sort();
        ops.dedup();

        if let Some(name) = &input.name {
            let existing = self.store.grants_named(key.key_id, name).await?;
            if let Some(g) = existing.iter().find(|g| {
                g.name.as_deref() == Some(name.as_str())
                    && g.grantee_principal == input.grantee_principal
                    && g.retiring_principal == input.retiring_principal
                    && g.operations == ops
                    && g.constraints == constraints
            }) {
                let token = self.grant_token(&key, &g.grant_id).await?;
                return Ok((g.grant_id.clone(), token));
            }
        }
        let grant_id = hex::encode(key.random(self, 32).await?.as_slice());
        let rec = GrantRecord {
            grant_id: grant_id.clone(),
            key_id: key.key_id,
            name: input.name,
            grantee_principal: input.grantee_principal,
            retiring_principal: input.retiring_principal,
            issuing_account: format!("arn:aws:iam::{}:root", ctx.principal.account),
            operations: ops,
            constraints,
            created_at: self.now(),
            mac: Vec::new(),
        };
        crate::failpoint::hit("create_grant.before_insert");
        // The limit is checked in the inserting transaction (concurrent creates cannot pass it).
        match self.store.insert_grant(&rec, MAX_GRANTS_PER_KEY).await {
            Ok(()) => crate::failpoint::hit("create_grant.after_insert"),
            Err(StoreError::LimitExceeded) => {
                return Err(KmsError::LimitExceeded(texts::grant_limit(
                    &key.arn(),
                    MAX_GRANTS_PER_KEY as usize,
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let token = self.grant_token(&key, &grant_id).await?;
        Ok((grant_id, token))
    }

    async fn grant_token(&self, key: &Permitted, grant_id: &str) -> Result<String> {
        let id = hex::decode(grant_id).map_err(|e| KmsError::Internal(e.to_string()))?;
        let mut raw = TOKEN_MAGIC.to_vec();
        raw.extend_from_slice(&id);
        raw.extend_from_slice(&key.random(self, 16).await?);
        Ok(B64.encode(raw))
    }

    pub async fn list_grants(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        grant_id: Option<&str>,
        grantee: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<GrantInfo>> {
        let limit = page_limit(limit, 100, 50)? as usize;
        let k = self.resolve(ctx, key, Op::new(Action::ListGrants)).await?;
        let after = valid_marker(marker)?;
        let arn = k.arn();
        if let Some(id) = grant_id {
            let g = self
                .store
                .get_grant(id)
                .await?
                .filter(|g| {
                    g.key_id == k.key_id && grantee.map_or(true, |p| g.grantee_principal == p)
                })
                .ok_or_else(unknown_grant)?;
            return page_grants(vec![g], limit, &arn);
        }
        let grants = self
            .store
            .grants_page(k.key_id, grantee, after, limit as i64 + 1)
            .await?;
        page_grants(grants, limit, &arn)
    }

    pub async fn list_retirable_grants(
        &self,
        ctx: &RequestContext,
        retiring_principal: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<GrantInfo>> {
        let limit = page_limit(limit, 100, 50)? as usize;
        validate_principal(retiring_principal, "RetiringPrincipal")?;
        self.authorize_account(ctx, Action::ListRetirableGrants, "*", Default::default())?;
        if principal_account(retiring_principal) != ctx.principal.account {
            return Err(KmsError::AccessDenied(
                texts::retirable_grants_other_account(&ctx.principal.arn),
            ));
        }
        let after = valid_marker(marker)?;
        let grants = self
            .store
            .grants_retirable_by(retiring_principal, after, limit as i64 + 1)
            .await?;
        let more = grants.len() > limit;
        let mut items = Vec::with_capacity(limit);
        for g in grants.into_iter().take(limit) {
            if let Some(k) = self.store.get_key(g.key_id).await? {
                items.push(GrantInfo {
                    key_arn: k.arn(),
                    record: g,
                });
            }
        }
        let next_marker = more
            .then(|| items.last().map(|g| g.record.grant_id.clone()))
            .flatten();
        Ok(Page { items, next_marker })
    }

    /// RetireGrant by token, or by key ARN and grant id.
    pub async fn retire_grant(
        &self,
        ctx: &RequestContext,
        grant_token: Option<&str>,
        key: Option<&KeyRef>,
        grant_id: Option<&str>,
    ) -> Result<()> {
        let id = match (grant_token, key, grant_id) {
            (Some(t), _, _) => grant_id_from_token(t)?,
            (None, Some(_), Some(id)) => id.to_owned(),
            _ => return Err(KmsError::Validation(texts::RETIRE_GRANT_NEEDS.into())),
        };
        let grant = self.store.get_grant(&id).await?.ok_or_else(unknown_grant)?;
        let key_rec = self
            .store
            .get_key(grant.key_id)
            .await?
            .ok_or_else(unknown_grant)?;
        if let Some(k) = key {
            let named = self.lookup(ctx, k, true).await?;
            if named.key_id != grant.key_id {
                return Err(KmsError::Validation(texts::grant_of_another_key(
                    &named.key_id.to_string(),
                    &id,
                )));
            }
        }
        self.authorize_retire(ctx, &grant, key_rec)?;
        self.store.delete_grant(&id).await?;
        Ok(())
    }

    pub async fn revoke_grant(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        grant_id: &str,
    ) -> Result<()> {
        let k = self.resolve(ctx, key, Op::new(Action::RevokeGrant)).await?;
        match self.store.get_grant(grant_id).await? {
            Some(g) if g.key_id == k.key_id => {
                self.store.delete_grant(grant_id).await?;
                Ok(())
            }
            Some(_) => Err(KmsError::Validation(texts::grant_of_another_key(
                &k.key_id.to_string(),
                grant_id,
            ))),
            None => Err(unknown_grant()),
        }
    }
}

/// A grant id that names no grant: `InvalidGrantIdException` without a message (as LocalStack's
/// provider, written against AWS, answers ListGrants and RevokeGrant).
fn unknown_grant() -> KmsError {
    KmsError::InvalidGrantId(String::new())
}

/// Markers are grant ids (64 hex digits) this server handed out.
fn valid_marker(marker: Option<&str>) -> Result<Option<&str>> {
    match marker {
        Some(m) if m.len() != 64 || !m.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(KmsError::InvalidMarker(texts::invalid_marker(m)))
        }
        m => Ok(m),
    }
}

/// One page from up to `limit + 1` grants of a key, ordered by id.
fn page_grants(
    mut grants: Vec<GrantRecord>,
    limit: usize,
    key_arn: &str,
) -> Result<Page<GrantInfo>> {
    let more = grants.len() > limit;
    grants.truncate(limit);
    let next_marker = more
        .then(|| grants.last().map(|g| g.grant_id.clone()))
        .flatten();
    let items = grants
        .into_iter()
        .map(|g| GrantInfo {
            key_arn: key_arn.to_owned(),
            record: g,
        })
        .collect();
    Ok(Page { items, next_marker })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constraints() {
        let eq = r#"{"EncryptionContextEquals":{"Dept":"finance"}}"#;
        assert!(constraints_hold(
            Some(eq),
            Some(&ctx(&[("dept", "finance")]))
        ));
        assert!(!constraints_hold(
            Some(eq),
            Some(&ctx(&[("dept", "Finance")]))
        ));
        assert!(!constraints_hold(
            Some(eq),
            Some(&ctx(&[("dept", "finance"), ("x", "y")]))
        ));
        assert!(!constraints_hold(Some(eq), Some(&ctx(&[]))));
        let sub = r#"{"EncryptionContextSubset":{"dept":"finance"}}"#;
        assert!(constraints_hold(
            Some(sub),
            Some(&ctx(&[("dept", "finance"), ("x", "y")]))
        ));
        assert!(!constraints_hold(Some(sub), Some(&ctx(&[("x", "y")]))));
        assert!(
            constraints_hold(Some(sub), None),
            "ops without context are not constrained"
        );
        assert!(constraints_hold(None, Some(&ctx(&[("a", "b")]))));
    }

    #[test]
    fn delegated_constraints_never_widen() {
        let eq = GrantConstraints {
            equals: Some([("dept".into(), "fin".into())].into()),
            subset: None,
        };
        let sub = GrantConstraints {
            subset: Some([("dept".into(), "fin".into())].into()),
            equals: None,
        };
        let wider_sub = GrantConstraints {
            subset: Some([("dept".into(), "fin".into()), ("app".into(), "x".into())].into()),
            equals: None,
        };
        let p_eq = serde_json::to_string(&eq).unwrap();
        let p_sub = serde_json::to_string(&sub).unwrap();
        assert!(at_least_as_strict(None, None));
        assert!(at_least_as_strict(Some(&eq), None));
        assert!(!at_least_as_strict(None, Some(&p_eq)));
        assert!(!at_least_as_strict(None, Some(&p_sub)));
        assert!(at_least_as_strict(Some(&eq), Some(&p_eq)));
        assert!(!at_least_as_strict(Some(&sub), Some(&p_eq)));
        assert!(at_least_as_strict(Some(&sub), Some(&p_sub)));
        assert!(
            at_least_as_strict(Some(&wider_sub), Some(&p_sub)),
            "more pairs are stricter"
        );
        assert!(at_least_as_strict(Some(&eq), Some(&p_sub)));
        assert_eq!(
            principal_account("arn:aws:iam::444455556666:user/x"),
            "444455556666"
        );
        assert_eq!(principal_account("111122223333"), "111122223333");
    }

    #[test]
    fn tokens() {
        assert!(validate_grant_tokens(&["bm9wZQ==".into()]).is_err());
        assert!(validate_grant_tokens(&["***".into()]).is_err());
        let mut raw = TOKEN_MAGIC.to_vec();
        raw.extend_from_slice(&[7u8; 48]);
        let t = B64.encode(raw);
        assert_eq!(grant_id_from_token(&t).unwrap(), hex::encode([7u8; 32]));
    }

    #[test]
    fn principals() {
        for ok in [
            "111122223333",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/app",
        ] {
            assert!(validate_principal(ok, "p").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "alice",
            "arn:aws:iam::1:user/a",
            "arn:aws:iam::111122223333:group/x",
        ] {
            assert!(validate_principal(bad, "p").is_err(), "{bad}");
        }
    }
}
