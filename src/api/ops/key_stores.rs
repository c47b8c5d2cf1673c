//! Custom key stores.

use super::*;

pub(super) async fn create_custom_key_store(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyStoreReq = parse(body)?;
    let name = required(r.custom_key_store_name, "customKeyStoreName")?;
    let id = kms
        .create_custom_key_store(
            ctx,
            crate::kms::keystores::CreateKeyStoreInput {
                name,
                cluster_id: r.cloud_hsm_cluster_id,
                trust_anchor: r.trust_anchor_certificate,
                password: r.key_store_password,
                store_type: r.custom_key_store_type,
            },
        )
        .await?;
    done(json!({ "CustomKeyStoreId": id }))
}

pub(super) async fn describe_custom_key_stores(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyStoreReq = parse(body)?;
    marker(&r.marker)?;
    let p = kms
        .describe_custom_key_stores(
            ctx,
            r.custom_key_store_id.as_deref(),
            r.custom_key_store_name.as_deref(),
            r.limit,
            r.marker.as_deref(),
        )
        .await?;
    let items = p
        .items
        .iter()
        .map(|s| {
            json!({
                "CustomKeyStoreId": s.id,
                "CustomKeyStoreName": s.name,
                "CloudHsmClusterId": s.cluster_id,
                "TrustAnchorCertificate": s.trust_anchor,
                "ConnectionState": s.connection_state,
                "ConnectionErrorCode": s.connection_error,
                "CreationDate": ts(s.created_at),
                "CustomKeyStoreType": "AWS_CLOUDHSM",
            })
        })
        .collect();
    done(page(items, "CustomKeyStores", p.next_marker))
}

pub(super) async fn connect_disconnect_or_delete(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: KeyStoreReq = parse(body)?;
    let id = required(r.custom_key_store_id, "customKeyStoreId")?;
    match op {
        O::ConnectCustomKeyStore => kms.connect_custom_key_store(ctx, &id).await?,
        O::DisconnectCustomKeyStore => kms.disconnect_custom_key_store(ctx, &id).await?,
        _ => kms.delete_custom_key_store(ctx, &id).await?,
    }
    done(json!({}))
}

pub(super) async fn update_custom_key_store(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyStoreReq = parse(body)?;
    let id = required(r.custom_key_store_id, "customKeyStoreId")?;
    kms.update_custom_key_store(
        ctx,
        &id,
        r.new_custom_key_store_name,
        r.key_store_password,
        r.cloud_hsm_cluster_id,
    )
    .await?;
    done(json!({}))
}
