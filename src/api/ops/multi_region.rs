//! Multi-Region keys.

use super::*;

pub(super) async fn replicate_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let input = crate::kms::ReplicateKeyInput {
        replica_region: required(r.replica_region, "replicaRegion")?,
        policy: r.policy,
        bypass_policy_lockout_safety_check: r.bypass_policy_lockout_safety_check.unwrap_or(false),
        description: r.description,
        tags: tags(r.tags)?,
    };
    let out = kms.replicate_key(ctx, &key, input).await?;
    let replica_tags: Vec<Value> = out
        .tags
        .iter()
        .map(|t| json!({ "TagKey": t.key, "TagValue": t.value }))
        .collect();
    done(json!({
        "ReplicaKeyMetadata": key_metadata(&out.metadata),
        "ReplicaPolicy": out.policy,
        "ReplicaTags": (!replica_tags.is_empty()).then_some(replica_tags),
    }))
}

pub(super) async fn update_primary_region(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let region = required(r.primary_region, "primaryRegion")?;
    kms.update_primary_region(ctx, &key, region).await?;
    Ok(None)
}
