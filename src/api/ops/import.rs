//! Imported key material.

use super::*;

pub(super) async fn get_parameters_for_import(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: ImportReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let alg = enum_member(
        r.wrapping_algorithm,
        "wrappingAlgorithm",
        WrappingAlgorithm::parse,
        WrappingAlgorithm::allowed,
    )?;
    let alg = required(alg, "wrappingAlgorithm")?;
    let spec = enum_member(
        r.wrapping_key_spec,
        "wrappingKeySpec",
        WrappingKeySpec::parse,
        WrappingKeySpec::allowed,
    )?;
    let spec = required(spec, "wrappingKeySpec")?;
    let p = kms.get_parameters_for_import(ctx, &key, alg, spec).await?;
    done(json!({
        "KeyId": p.key_arn,
        "ImportToken": b64(&p.import_token),
        "PublicKey": b64(&p.public_key),
        "ParametersValidTo": ts(p.parameters_valid_to),
    }))
}

pub(super) async fn import_key_material(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: ImportReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let token = required(r.import_token, "importToken")?;
    blob_length(&token, "importToken", 1, 6144)?;
    let material = required(r.encrypted_key_material, "encryptedKeyMaterial")?;
    blob_length(&material, "encryptedKeyMaterial", 1, 6144)?;
    let model = enum_member(
        r.expiration_model,
        "expirationModel",
        ExpirationModel::parse,
        ExpirationModel::allowed,
    )?;
    let import_type = enum_member(
        r.import_type,
        "importType",
        ImportType::parse,
        ImportType::allowed,
    )?;
    let valid_to = match r.valid_to {
        Some(t) if t.is_finite() => Some((t * 1000.0) as i64),
        Some(_) => {
            return Err(
                crate::kms::KmsError::Validation(texts::VALID_TO_NOT_TIMESTAMP.into()).into(),
            )
        }
        None => None,
    };
    let input = crate::kms::ImportInput {
        import_token: token,
        encrypted_key_material: material,
        expiration_model: model,
        valid_to,
        import_type,
        key_material_id: r.key_material_id,
        description: r.key_material_description,
    };
    let (arn, material_id) = kms.import_key_material(ctx, &key, input).await?;
    done(json!({ "KeyId": arn, "KeyMaterialId": material_id }))
}

pub(super) async fn delete_imported_key_material(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: ImportReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let (arn, material_id) = kms
        .delete_imported_key_material(ctx, &key, r.key_material_id.as_deref())
        .await?;
    done(json!({ "KeyId": arn, "KeyMaterialId": material_id }))
}
