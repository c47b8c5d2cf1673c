//! Symmetric cryptography: Encrypt, Decrypt, ReEncrypt, data keys, random bytes.

use super::*;

pub(super) async fn encrypt(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: EncryptReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let pt = required(r.plaintext, "plaintext")?;
    blob_length(&pt, "plaintext", 1, 4096)?;
    grant_tokens(&r.grant_tokens)?;
    let alg = enc_alg(r.encryption_algorithm, "encryptionAlgorithm")?;
    let e = kms
        .encrypt(ctx, &key, pt, &enc_ctx(r.encryption_context), alg)
        .await?;
    done(json!({
        "CiphertextBlob": b64(&e.ciphertext_blob),
        "KeyId": e.key_arn,
        "EncryptionAlgorithm": e.algorithm.as_str(),
    }))
}

pub(super) async fn decrypt(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: DecryptReq = parse(body)?;
    let blob = required(r.ciphertext_blob, "ciphertextBlob")?;
    blob_length(&blob, "ciphertextBlob", 1, 6144)?;
    grant_tokens(&r.grant_tokens)?;
    let key = opt_key_ref(r.key_id, "keyId")?;
    let alg = enc_alg(r.encryption_algorithm, "encryptionAlgorithm")?;
    let d = kms
        .decrypt(
            ctx,
            &blob,
            key.as_ref(),
            &enc_ctx(r.encryption_context),
            alg,
        )
        .await?;
    Ok(Some(answer::decrypt(d)))
}

pub(super) async fn re_encrypt(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: ReEncryptReq = parse(body)?;
    let blob = required(r.ciphertext_blob, "ciphertextBlob")?;
    blob_length(&blob, "ciphertextBlob", 1, 6144)?;
    grant_tokens(&r.grant_tokens)?;
    let dest = key_ref(r.destination_key_id, "destinationKeyId")?;
    let src = opt_key_ref(r.source_key_id, "sourceKeyId")?;
    let src_alg = enc_alg(r.source_encryption_algorithm, "sourceEncryptionAlgorithm")?;
    let dst_alg = enc_alg(
        r.destination_encryption_algorithm,
        "destinationEncryptionAlgorithm",
    )?;
    let e = kms
        .re_encrypt(
            ctx,
            &blob,
            src.as_ref(),
            &enc_ctx(r.source_encryption_context),
            src_alg,
            &dest,
            &enc_ctx(r.destination_encryption_context),
            dst_alg,
        )
        .await?;
    done(json!({
        "CiphertextBlob": b64(&e.ciphertext_blob),
        "SourceKeyId": e.source_key_arn,
        "KeyId": e.key_arn,
        "SourceEncryptionAlgorithm": e.source_algorithm.as_str(),
        "DestinationEncryptionAlgorithm": e.destination_algorithm.as_str(),
        "SourceKeyMaterialId": e.source_material_id,
        "DestinationKeyMaterialId": e.destination_material_id,
    }))
}

pub(super) async fn generate_data_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: DataKeyReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    let spec = enum_member(
        r.key_spec,
        "keySpec",
        DataKeySpec::parse,
        DataKeySpec::allowed,
    )?;
    let with_plaintext = op == O::GenerateDataKey;
    let d = kms
        .generate_data_key(
            ctx,
            &key,
            spec,
            r.number_of_bytes,
            &enc_ctx(r.encryption_context),
            with_plaintext,
        )
        .await?;
    Ok(Some(answer::data_key(d)))
}

pub(super) async fn generate_random(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: RandomReq = parse(body)?;
    let bytes = kms
        .generate_random(ctx, r.number_of_bytes, r.custom_key_store_id.as_deref())
        .await?;
    Ok(Some(answer::random(bytes)))
}
