//! Aliases.

use super::*;

pub(super) async fn create_or_update_alias(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: AliasReq = parse(body)?;
    let alias = alias_name(r.alias_name)?;
    let target = key_ref(r.target_key_id, "targetKeyId")?;
    if op == O::CreateAlias {
        kms.create_alias(ctx, &alias, &target).await?;
    } else {
        kms.update_alias(ctx, &alias, &target).await?;
    }
    Ok(None)
}

pub(super) async fn delete_alias(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: AliasReq = parse(body)?;
    kms.delete_alias(ctx, &alias_name(r.alias_name)?).await?;
    Ok(None)
}

pub(super) async fn list_aliases(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: ListAliasesReq = parse(body)?;
    marker(&r.marker)?;
    let key = opt_key_ref(r.key_id, "keyId")?;
    let p = kms
        .list_aliases(ctx, key.as_ref(), r.limit, r.marker.as_deref())
        .await?;
    let items = p
        .items
        .iter()
        .map(|a| {
            let r = a.record.as_ref();
            json!({
                "AliasName": a.name,
                "AliasArn": a.arn,
                "TargetKeyId": a.target_key_id,
                "CreationDate": r.map(|r| ts(r.created_at)),
                "LastUpdatedDate": r.map(|r| ts(r.updated_at)),
            })
        })
        .collect();
    done(page(items, "Aliases", p.next_marker))
}
