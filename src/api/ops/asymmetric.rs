//! Asymmetric keys and MACs: Sign/Verify, public keys, data key pairs, key agreement, ML-KEM, HMAC.

use super::*;

pub(super) async fn sign_or_verify(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: SignReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let msg = message(r.message)?;
    grant_tokens(&r.grant_tokens)?;
    let mt = enum_member(
        r.message_type,
        "messageType",
        MessageType::parse,
        MessageType::allowed,
    )?;
    let alg = signing_alg(r.signing_algorithm)?;
    if op == O::Sign {
        let s = kms.sign(ctx, &key, msg, mt, alg).await?;
        return done(json!({
            "KeyId": s.key_arn,
            "Signature": b64(&s.signature),
            "SigningAlgorithm": alg.as_str(),
        }));
    }
    let sig = required(r.signature, "signature")?;
    blob_length(&sig, "signature", 1, 6144)?;
    let arn = kms.verify(ctx, &key, msg, mt, &sig, alg).await?;
    done(json!({
        "KeyId": arn,
        "SignatureValid": true,
        "SigningAlgorithm": alg.as_str(),
    }))
}

pub(super) async fn get_public_key(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: SignReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    let p = kms.get_public_key(ctx, &key).await?;
    done(json!({
        "KeyId": p.key_arn,
        "PublicKey": b64(&p.public_key),
        "CustomerMasterKeySpec": p.key_spec.as_str(),
        "KeySpec": p.key_spec.as_str(),
        "KeyUsage": p.key_usage.as_str(),
        "EncryptionAlgorithms": algorithms(p.key_spec.encryption_algorithms(p.key_usage), |a| a.as_str()),
        "SigningAlgorithms": algorithms(p.key_spec.signing_algorithms(p.key_usage), |a| a.as_str()),
        "KeyAgreementAlgorithms": (p.key_usage == KeyUsage::KeyAgreement).then(|| json!(["ECDH"])),
        "EncapsulationAlgorithms": (p.key_usage == KeyUsage::EncapsulateDecapsulate).then(|| json!(["ML_KEM"])),
    }))
}

pub(super) async fn derive_shared_secret(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: DeriveReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    // The model's validation has checked the algorithm (ECDH) and the key's presence.
    let public_key = required(r.public_key, "publicKey")?;
    if r.recipient.is_some() {
        return Err(crate::kms::KmsError::UnsupportedOperation(
            texts::RECIPIENT_UNSUPPORTED.into(),
        )
        .into());
    }
    let (arn, secret) = kms.derive_shared_secret(ctx, &key, &public_key).await?;
    Ok(Some(answer::shared_secret(arn, secret)))
}

pub(super) async fn encapsulate(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KemReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    // The model's validation has checked the algorithm (ML_KEM).
    let (arn, ciphertext, secret) = kms.encapsulate(ctx, &key).await?;
    Ok(Some(answer::kem(arn, Some(&ciphertext), secret)))
}

pub(super) async fn decapsulate(c: Call<'_>) -> Out {
    let Call { kms, ctx, body, .. } = c;
    let r: KemReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    let ciphertext = required(
        r.shared_secret_ciphertext_blob,
        "sharedSecretCiphertextBlob",
    )?;
    let (arn, secret) = kms.decapsulate(ctx, &key, ciphertext).await?;
    Ok(Some(answer::kem(arn, None, secret)))
}

pub(super) async fn generate_or_verify_mac(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: MacReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    let msg = message(r.message)?;
    grant_tokens(&r.grant_tokens)?;
    let alg = mac_alg(r.mac_algorithm)?;
    if op == O::GenerateMac {
        let (arn, mac) = kms.generate_mac(ctx, &key, msg, alg).await?;
        return done(json!({
            "KeyId": arn,
            "Mac": b64(&mac),
            "MacAlgorithm": alg.as_str(),
        }));
    }
    let mac = required(r.mac, "mac")?;
    blob_length(&mac, "mac", 1, 6144)?;
    let arn = kms.verify_mac(ctx, &key, msg, &mac, alg).await?;
    done(json!({
        "KeyId": arn,
        "MacValid": true,
        "MacAlgorithm": alg.as_str(),
    }))
}

pub(super) async fn generate_data_key_pair(c: Call<'_>) -> Out {
    let Call { kms, ctx, op, body } = c;
    use Operation as O;
    let r: DataKeyPairReq = parse(body)?;
    let key = key_ref(r.key_id, "keyId")?;
    grant_tokens(&r.grant_tokens)?;
    let spec = required(
        enum_member(
            r.key_pair_spec,
            "keyPairSpec",
            DataKeyPairSpec::parse,
            DataKeyPairSpec::allowed,
        )?,
        "keyPairSpec",
    )?;
    let with_plaintext = op == O::GenerateDataKeyPair;
    let p = kms
        .generate_data_key_pair(
            ctx,
            &key,
            spec,
            &enc_ctx(r.encryption_context),
            with_plaintext,
        )
        .await?;
    Ok(Some(answer::data_key_pair(p, spec)))
}
