//! Rotation.

use super::*;

pub(super) async fn enable_key_rotation(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    kms.enable_key_rotation(ctx, &key, r.rotation_period_in_days)
        .await?;
    Ok(None)
}

pub(super) async fn disable_key_rotation(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    kms.disable_key_rotation(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    Ok(None)
}

pub(super) async fn get_key_rotation_status(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let s = kms
        .get_key_rotation_status(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    done(json!({
        "KeyRotationEnabled": s.enabled,
        "KeyId": s.arn,
        "RotationPeriodInDays": s.period_days,
        "NextRotationDate": s.next_rotation.map(ts),
    }))
}

pub(super) async fn rotate_key_on_demand(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    let arn = kms
        .rotate_key_on_demand(ctx, &key_ref(r.key_id, "keyId")?)
        .await?;
    done(json!({ "KeyId": arn }))
}

pub(super) async fn list_key_rotations(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KeyReq = parse(body)?;
    marker(&r.marker)?;
    let key = key_ref(r.key_id, "keyId")?;
    let all = match r.include_key_material.as_deref() {
        None | Some("ROTATIONS_ONLY") => false,
        Some("ALL_KEY_MATERIAL") => true,
        Some(other) => {
            return Err(
                super::super::error::ProtocolError::Validation(texts::validation(&[
                    texts::constraint(
                        other,
                        "includeKeyMaterial",
                        &texts::enum_set("[ALL_KEY_MATERIAL, ROTATIONS_ONLY]"),
                    ),
                ]))
                .into(),
            )
        }
    };
    let p = kms
        .list_key_rotations(ctx, &key, all, r.limit, r.marker.as_deref())
        .await?;
    let items = p
        .items
        .iter()
        .map(|e| {
            let import = e.import.as_ref();
            json!({
                "KeyId": e.key_id,
                "KeyMaterialId": e.material_id,
                "KeyMaterialDescription": import.and_then(|i| i.description.as_deref()),
                "ImportState": import
                    .map(|i| if i.imported { "IMPORTED" } else { "PENDING_IMPORT" }),
                "KeyMaterialState": e.state.as_str(),
                "ExpirationModel": import.map(|i| i.expiration_model.as_str()),
                "ValidTo": import.and_then(|i| i.valid_to).map(ts),
                "RotationDate": e.rotation_date.map(ts),
                "RotationType": e.rotation_type.map(|t| t.as_str()),
            })
        })
        .collect();
    done(page(items, "Rotations", p.next_marker))
}
