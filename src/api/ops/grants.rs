//! Grants.

use super::*;

pub(super) async fn create_grant(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: GrantReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    if r.grantee_service_principal.is_some() || r.retiring_service_principal.is_some() {
        return Err(crate::kms::KmsError::UnsupportedOperation(
            texts::SERVICE_PRINCIPALS_UNSUPPORTED.into(),
        )
        .into());
    }
    let grantee = required(r.grantee_principal, "granteePrincipal")?;
    length(&grantee, "granteePrincipal", 1, 256)?;
    let operations = required(r.operations, "operations")?;
    let constraints = match r.constraints {
        Some(c) if c.source_arn.is_some() => {
            return Err(crate::kms::KmsError::UnsupportedOperation(
                texts::SOURCE_ARN_UNSUPPORTED.into(),
            )
            .into())
        }
        Some(c) => Some(GrantConstraints {
            subset: c.encryption_context_subset,
            equals: c.encryption_context_equals,
        }),
        None => None,
    };
    let (grant_id, grant_token) = kms
        .create_grant(
            ctx,
            CreateGrantInput {
                key,
                grantee_principal: grantee,
                retiring_principal: r.retiring_principal,
                operations,
                constraints,
                name: r.name,
            },
        )
        .await?;
    done(json!({ "GrantToken": grant_token, "GrantId": grant_id }))
}

pub(super) async fn list_grants(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: GrantReq = parse(body)?;
    marker(&r.marker)?;
    let key = key_ref(r.key_id, "keyId")?;
    let p = kms
        .list_grants(
            ctx,
            &key,
            r.grant_id.as_deref(),
            r.grantee_principal.as_deref(),
            r.limit,
            r.marker.as_deref(),
        )
        .await?;
    done(page(
        p.items.iter().map(grant_entry).collect(),
        "Grants",
        p.next_marker,
    ))
}

pub(super) async fn list_retirable_grants(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: GrantReq = parse(body)?;
    marker(&r.marker)?;
    let retiring = required(r.retiring_principal, "retiringPrincipal")?;
    let p = kms
        .list_retirable_grants(ctx, &retiring, r.limit, r.marker.as_deref())
        .await?;
    done(page(
        p.items.iter().map(grant_entry).collect(),
        "Grants",
        p.next_marker,
    ))
}

pub(super) async fn retire_grant(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: GrantReq = parse(body)?;
    let key = opt_key_ref(r.key_id, "keyId")?;
    kms.retire_grant(
        ctx,
        r.grant_token.as_deref(),
        key.as_ref(),
        r.grant_id.as_deref(),
    )
    .await?;
    Ok(None)
}

pub(super) async fn revoke_grant(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: GrantReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let id = required(r.grant_id, "grantId")?;
    kms.revoke_grant(ctx, &key, &id).await?;
    Ok(None)
}
