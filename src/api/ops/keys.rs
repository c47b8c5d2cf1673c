//! Keys: creation, description, state, deletion, tags, policies, last usage.

use super::*;

pub(super) async fn create_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: CreateKeyReq = parse(body)?;
    if let Some(p) = &r.policy {
        length(p, "policy", 1, 131_072)?;
    }
    let spec = enum_member(r.key_spec, "keySpec", KeySpec::parse, KeySpec::allowed)?;
    let cmk_spec = enum_member(
        r.customer_master_key_spec,
        "customerMasterKeySpec",
        KeySpec::parse,
        KeySpec::allowed,
    )?;
    if spec.is_some() && cmk_spec.is_some() {
        return Err(crate::kms::KmsError::Validation(
            texts::KEY_SPEC_AND_CUSTOMER_MASTER_KEY_SPEC.into(),
        )
        .into());
    }
    let input = CreateKeyInput {
        bypass_policy_lockout_safety_check: r.bypass_policy_lockout_safety_check.unwrap_or(false),
        description: r.description,
        key_usage: enum_member(r.key_usage, "keyUsage", KeyUsage::parse, KeyUsage::allowed)?,
        key_spec: spec.or(cmk_spec),
        origin: enum_member(r.origin, "origin", Origin::parse, Origin::allowed)?,
        custom_key_store_id: r.custom_key_store_id,
        multi_region: r.multi_region.unwrap_or(false),
        policy: r.policy,
        tags: tags(r.tags)?,
    };
    let k = kms.create_key(ctx, input).await?;
    done(json!({ "KeyMetadata": key_metadata(&k) }))
}

pub(super) async fn describe_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let k = kms.describe_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
    done(json!({ "KeyMetadata": key_metadata(&k) }))
}

pub(super) async fn list_keys(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    marker(&r.marker)?;
    let p = kms.list_keys(ctx, r.limit, r.marker.as_deref()).await?;
    let items = p
        .items
        .iter()
        .map(|k| json!({ "KeyId": k.record.public_id(), "KeyArn": k.arn }))
        .collect();
    done(page(items, "Keys", p.next_marker))
}

pub(super) async fn enable_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    kms.enable_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
    Ok(None)
}

pub(super) async fn disable_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    kms.disable_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
    Ok(None)
}

pub(super) async fn schedule_key_deletion(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let s = kms
        .schedule_key_deletion(ctx, &key, r.pending_window_in_days)
        .await?;
    done(json!({
        "KeyId": s.arn,
        "DeletionDate": s.deletion_date.map(ts),
        "KeyState": s.state.as_str(),
        "PendingWindowInDays": s.pending_window_days,
    }))
}

pub(super) async fn cancel_key_deletion(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let arn = kms
        .cancel_key_deletion(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    done(json!({ "KeyId": arn }))
}

pub(super) async fn update_key_description(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let d = required(r.description, "description")?;
    kms.update_key_description(ctx, &key, d).await?;
    Ok(None)
}

pub(super) async fn tag_resource(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let t = tags(Some(required(r.tags, "tags")?))?;
    kms.tag_resource(ctx, &key, t).await?;
    Ok(None)
}

pub(super) async fn untag_resource(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let keys = required(r.tag_keys, "tagKeys")?;
    kms.untag_resource(ctx, &key, keys).await?;
    Ok(None)
}

pub(super) async fn list_resource_tags(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    marker(&r.marker)?;
    let key = key_ref(r.key_id, "keyId")?;
    let p = kms
        .list_resource_tags(ctx, &key, r.limit, r.marker.as_deref())
        .await?;
    let items = p
        .items
        .iter()
        .map(|t| json!({ "TagKey": t.key, "TagValue": t.value }))
        .collect();
    done(page(items, "Tags", p.next_marker))
}

pub(super) async fn get_key_policy(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let name = r.policy_name.unwrap_or_else(|| "default".into());
    let policy = kms.get_key_policy(ctx, &key, Some(&name)).await?;
    done(json!({ "Policy": policy, "PolicyName": name }))
}

pub(super) async fn put_key_policy(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let policy = required(r.policy, "policy")?;
    length(&policy, "policy", 1, 131_072)?;
    let bypass = r.bypass_policy_lockout_safety_check.unwrap_or(false);
    kms.put_key_policy(ctx, &key, r.policy_name.as_deref(), policy, bypass)
        .await?;
    Ok(None)
}

pub(super) async fn list_key_policies(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let names = kms
        .list_key_policies(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    done(json!({ "PolicyNames": names, "Truncated": false }))
}

pub(super) async fn get_key_last_usage(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let u = kms
        .get_key_last_usage(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    let last = match &u.last {
        Some(l) => json!({
            "Operation": l.operation,
            "Timestamp": ts(l.used_at),
            "CloudTrailEventId": l.event_id,
            "KmsRequestId": l.request_id,
        }),
        None => json!({}),
    };
    // Uses are tracked from a key's creation on.
    done(json!({
        "KeyId": u.key.public_id(),
        "KeyLastUsage": last,
        "TrackingStartDate": ts(u.key.created_at),
        "KeyCreationDate": ts(u.key.created_at),
    }))
}
