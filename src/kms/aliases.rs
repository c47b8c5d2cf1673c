//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use super::authz::Op;
use super::ids::{alias_arn, AliasName, KeyRef};
use super::texts;
use super::{
    page_limit, require_not_pending_deletion, Kms, KmsError, Page, RequestContext, Result,
};
use crate::operations::Action;
use crate::store::{AliasRecord, StoreError};

/// Maximum aliases pointing at one key.
pub const MAX_ALIASES_PER_KEY: i64 = 50;

#[derive(Debug, Clone)]
pub struct AliasInfo {
    pub arn: String,
    pub name: String,
    /// None for a predefined alias of an AWS managed key not created yet.
    pub record: Option<AliasRecord>,
    /// The target's key id as callers see it (`mrk-…` for a multi-Region key).
    pub target_key_id: Option<String>,
}

/// `alias/aws/…` names are AWS's (its managed keys): users may not create, point or delete
/// them. AWS answers `NotAuthorizedException` without a message (as recorded by moto's tests
/// against AWS, `test__create_alias__raises_if_reserved_alias`).
fn reserved(alias: &AliasName) -> Result<()> {
    if alias.is_reserved() {
        return Err(KmsError::NotAuthorized(String::new()));
    }
    Ok(())
}

impl Kms {
    pub async fn create_alias(
        &self,
        ctx: &RequestContext,
        alias: &AliasName,
        target: &KeyRef,
    ) -> Result<()> {
        reserved(alias)?;
        let alias_arn_s = alias_arn(&ctx.region, &ctx.account, alias.as_str());
        self.authorize_account(ctx, Action::CreateAlias, &alias_arn_s, Default::default())?;
        let key = self
            .resolve(ctx, target, Op::new(Action::CreateAlias))
            .await?;
        require_not_pending_deletion(&key)?;
        if key.account != ctx.account {
            return Err(KmsError::NotFound(texts::key_not_found(&key.arn())));
        }
        let now = self.now();
        let rec = AliasRecord {
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            name: alias.as_str().to_owned(),
            key_id: key.key_id,
            created_at: now,
            updated_at: now,
        };
        // The limit is checked in the inserting transaction (concurrent creates cannot pass it).
        match self.store.insert_alias(&rec, MAX_ALIASES_PER_KEY).await {
            Ok(()) => Ok(()),
            Err(StoreError::LimitExceeded) => Err(KmsError::LimitExceeded(texts::alias_limit(
                MAX_ALIASES_PER_KEY as usize,
            ))),
            Err(StoreError::NotFound) => Err(KmsError::NotFound(texts::key_not_found(&key.arn()))),
            Err(StoreError::AlreadyExists) => Err(KmsError::AlreadyExists(texts::alias_exists(
                &alias_arn(&ctx.region, &ctx.account, alias.as_str()),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_alias(
        &self,
        ctx: &RequestContext,
        alias: &AliasName,
        target: &KeyRef,
    ) -> Result<()> {
        reserved(alias)?;
        let alias_arn_s = alias_arn(&ctx.region, &ctx.account, alias.as_str());
        self.authorize_account(ctx, Action::UpdateAlias, &alias_arn_s, Default::default())?;
        let mut rec = self
            .store
            .get_alias(&ctx.region, &ctx.account, alias.as_str())
            .await?
            .ok_or_else(|| not_found(ctx, alias))?;
        let new_key = self
            .resolve(ctx, target, Op::new(Action::UpdateAlias))
            .await?;
        require_not_pending_deletion(&new_key)?;
        if let Some(old) = self.store.get_key(rec.key_id).await? {
            self.authorize(ctx, old.clone(), Op::new(Action::UpdateAlias))
                .await?;
            if old.key_usage != new_key.key_usage {
                return Err(KmsError::Validation(texts::alias_usage_change(
                    alias.as_str(),
                    old.key_usage,
                    new_key.key_usage,
                )));
            }
            if old.key_spec != new_key.key_spec {
                return Err(KmsError::Validation(texts::alias_spec_change(
                    alias.as_str(),
                    old.key_spec.as_str(),
                    new_key.key_spec.as_str(),
                )));
            }
        }
        rec.key_id = new_key.key_id;
        rec.updated_at = self.now();
        match self.store.update_alias(&rec).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err(not_found(ctx, alias)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_alias(&self, ctx: &RequestContext, alias: &AliasName) -> Result<()> {
        reserved(alias)?;
        let alias_arn_s = alias_arn(&ctx.region, &ctx.account, alias.as_str());
        self.authorize_account(ctx, Action::DeleteAlias, &alias_arn_s, Default::default())?;
        let rec = self
            .store
            .get_alias(&ctx.region, &ctx.account, alias.as_str())
            .await?
            .ok_or_else(|| not_found(ctx, alias))?;
        if let Some(key) = self.store.get_key(rec.key_id).await? {
            self.authorize(ctx, key, Op::new(Action::DeleteAlias))
                .await?;
        }
        if self
            .store
            .delete_alias(&ctx.region, &ctx.account, alias.as_str())
            .await?
        {
            Ok(())
        } else {
            Err(not_found(ctx, alias))
        }
    }

    pub async fn list_aliases(
        &self,
        ctx: &RequestContext,
        key: Option<&KeyRef>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<AliasInfo>> {
        let limit = page_limit(limit, 100, 50)?;
        self.authorize_account(ctx, Action::ListAliases, "*", Default::default())?;
        let key_id = match key {
            Some(k) => Some(self.lookup(ctx, k, false).await?.key_id),
            None => None,
        };
        if let Some(m) = marker {
            if !m.starts_with("alias/") {
                return Err(KmsError::InvalidMarker(texts::invalid_marker(m)));
            }
        }
        let rows = self
            .store
            .list_aliases(&ctx.region, &ctx.account, key_id, marker, limit + 1)
            .await?;
        // Up to which name this page of the store is complete.
        let complete_to = (rows.len() as i64 > limit).then(|| rows[rows.len() - 1].name.clone());
        let mut items: Vec<AliasInfo> = rows
            .into_iter()
            .map(|r| AliasInfo {
                arn: alias_arn(&r.region, &r.account, &r.name),
                name: r.name.clone(),
                record: Some(r),
                target_key_id: None,
            })
            .collect();
        if key_id.is_none() {
            // Predefined aliases of AWS managed keys not created yet, without a target.
            for s in super::managed::SERVICES {
                let name = format!("{}{}", super::managed::RESERVED_PREFIX, s.alias);
                let in_page = marker.map_or(true, |m| name.as_str() > m)
                    && complete_to.as_ref().map_or(true, |c| name <= *c);
                if in_page && !items.iter().any(|a| a.name == name) {
                    items.push(AliasInfo {
                        arn: alias_arn(&ctx.region, &ctx.account, &name),
                        name,
                        record: None,
                        target_key_id: None,
                    });
                }
            }
            items.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let next_marker = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|a| a.name.clone())
        } else {
            None
        };
        // The targets' public ids (a multi-Region key's row id is internal); key records come
        // from the store's cache.
        for a in &mut items {
            if let Some(r) = &a.record {
                a.target_key_id = Some(match self.store.get_key(r.key_id).await? {
                    Some(k) => k.public_id(),
                    None => r.key_id.to_string(),
                });
            }
        }
        Ok(Page { items, next_marker })
    }
}

fn not_found(ctx: &RequestContext, alias: &AliasName) -> KmsError {
    KmsError::NotFound(texts::alias_not_found(&alias_arn(
        &ctx.region,
        &ctx.account,
        alias.as_str(),
    )))
}
