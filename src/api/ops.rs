//! One arm per operation: parse the request members, call the domain, encode the answer.

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::answer::{self, Reply};
use super::wire::*;
use super::ApiError;
use crate::kms::blob::EncryptionContext;
use crate::kms::ids::AliasName;
use crate::kms::texts;
use crate::kms::{
    CreateGrantInput, CreateKeyInput, GrantConstraints, GrantInfo, KeyInfo, Kms, RequestContext,
};
use crate::model::{
    DataKeyPairSpec, DataKeySpec, EncryptionAlgorithm, ExpirationModel, ImportType, KeySpec,
    KeyUsage, MacAlgorithm, MessageType, Origin, SigningAlgorithm, WrappingAlgorithm,
    WrappingKeySpec,
};
use crate::store::TagRecord;

pub use crate::operations::Operation;

type Out = Result<Option<Reply>, ApiError>;

/// Remove null members so absent fields are omitted, as AWS does.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

fn key_metadata(k: &KeyInfo) -> Value {
    let r = &k.record;
    json!({
        "AWSAccountId": r.account,
        "KeyId": r.public_id(),
        "Arn": k.arn,
        "CreationDate": ts(r.created_at),
                "Enabled": k.state == crate::model::KeyState::Enabled,
        "Description": r.description,
        "KeyUsage": r.key_usage.as_str(),
                "KeyState": k.state.as_str(),
        "DeletionDate": r.deletion_date.map(ts),
        "Origin": r.origin.as_str(),
        "KeyManager": r.key_manager.as_str(),
        "CustomerMasterKeySpec": r.key_spec.as_str(),
        "KeySpec": r.key_spec.as_str(),
        "EncryptionAlgorithms": algorithms(r.key_spec.encryption_algorithms(r.key_usage), |a| a.as_str()),
        "SigningAlgorithms": algorithms(r.key_spec.signing_algorithms(r.key_usage), |a| a.as_str()),
        "MacAlgorithms": algorithms(&r.key_spec.mac_algorithms(r.key_usage), |a| a.as_str()),
        "KeyAgreementAlgorithms": (r.key_usage == KeyUsage::KeyAgreement).then(|| json!(["ECDH"])),
        "EncapsulationAlgorithms": (r.key_usage == KeyUsage::EncapsulateDecapsulate).then(|| json!(["ML_KEM"])),
        "MultiRegion": r.multi_region.is_some(),
        "MultiRegionConfiguration": k.multi_region.as_ref().map(|m| json!({
            "MultiRegionKeyType": if m.primary { "PRIMARY" } else { "REPLICA" },
            "PrimaryKey": { "Arn": m.primary_key.0, "Region": m.primary_key.1 },
            "ReplicaKeys": m.replicas.iter()
                .map(|(arn, region)| json!({ "Arn": arn, "Region": region }))
                .collect::<Vec<_>>(),
        })),
        "PendingDeletionWindowInDays": (k.state == crate::model::KeyState::PendingReplicaDeletion)
            .then_some(r.pending_window_days).flatten(),
        "CustomKeyStoreId": r.custom_key_store_id,
        "CloudHsmClusterId": k.cluster_id,
        "CurrentKeyMaterialId": (r.key_spec == KeySpec::SymmetricDefault
            && !matches!(r.state, crate::model::KeyState::PendingImport
                | crate::model::KeyState::Creating)).then_some(&k.current_material_id),
        "ExpirationModel": k.expiration.as_ref().map(|e| e.0.clone()),
        "ValidTo": k.expiration.as_ref().and_then(|e| e.1).map(ts),
    })
}

/// An algorithm list member, omitted (null) when empty, as AWS does.
fn algorithms<T: Copy>(list: &[T], name: fn(T) -> &'static str) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        list.iter().map(|a| Value::from(name(*a))).collect()
    }
}

/// The message of Sign/Verify/GenerateMac/VerifyMac: required, 1..4096 bytes.
fn message(v: Option<Zeroizing<Vec<u8>>>) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let m = required(v, "message")?;
    blob_length(&m, "message", 1, crate::kms::MAX_MESSAGE)?;
    Ok(m)
}

fn signing_alg(v: Option<String>) -> Result<SigningAlgorithm, ApiError> {
    let alg = enum_member(
        v,
        "signingAlgorithm",
        SigningAlgorithm::parse,
        SigningAlgorithm::allowed,
    )?;
    Ok(required(alg, "signingAlgorithm")?)
}

fn mac_alg(v: Option<String>) -> Result<MacAlgorithm, ApiError> {
    let alg = enum_member(
        v,
        "macAlgorithm",
        MacAlgorithm::parse,
        MacAlgorithm::allowed,
    )?;
    Ok(required(alg, "macAlgorithm")?)
}

fn enc_ctx(v: WireContext) -> EncryptionContext {
    v.unwrap_or_default()
}

fn enc_alg(v: Option<String>, member: &str) -> Result<Option<EncryptionAlgorithm>, ApiError> {
    Ok(enum_member(
        v,
        member,
        EncryptionAlgorithm::parse,
        EncryptionAlgorithm::allowed,
    )?)
}

fn tags(v: Option<Vec<TagWire>>) -> Result<Vec<TagRecord>, ApiError> {
    v.unwrap_or_default()
        .into_iter()
        .map(|t| {
            Ok(TagRecord {
                key: required(t.tag_key, "tags.member.tagKey")?,
                value: required(t.tag_value, "tags.member.tagValue")?,
            })
        })
        .collect()
}

fn alias_name(v: Option<String>) -> Result<AliasName, ApiError> {
    let s = required(v, "aliasName")?;
    length(&s, "aliasName", 1, 256)?;
    Ok(AliasName::parse(&s)?)
}

fn grant_entry(g: &GrantInfo) -> Value {
    let r = &g.record;
    json!({
        "KeyId": g.key_arn,
        "GrantId": r.grant_id,
        "Name": r.name,
        "CreationDate": ts(r.created_at),
        "GranteePrincipal": r.grantee_principal,
        "RetiringPrincipal": r.retiring_principal,
        "IssuingAccount": r.issuing_account,
        "Operations": r.operations,
        "Constraints": g.constraints().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
    })
}

fn page(items: Vec<Value>, list: &str, next: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(list.to_owned(), Value::Array(items));
    out.insert("Truncated".into(), Value::Bool(next.is_some()));
    if let Some(m) = next {
        out.insert("NextMarker".into(), Value::String(m));
    }
    Value::Object(out)
}

pub async fn dispatch(kms: &Kms, ctx: &RequestContext, op: Operation, body: &[u8]) -> Out {
    use Operation as O;
    let done = |v: Value| Ok(Some(Reply::Json(compact(v))));
    match op {
        O::CreateKey => {
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
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated."
                        .into(),
                )
                .into());
            }
            let input = CreateKeyInput {
                bypass_policy_lockout_safety_check: r
                    .bypass_policy_lockout_safety_check
                    .unwrap_or(false),
                description: r.description,
                key_usage: enum_member(
                    r.key_usage,
                    "keyUsage",
                    KeyUsage::parse,
                    KeyUsage::allowed,
                )?,
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
        O::DescribeKey => {
            let r: KeyReq = parse(body)?;
            let k = kms.describe_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
            done(json!({ "KeyMetadata": key_metadata(&k) }))
        }
        O::ListKeys => {
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
        O::EnableKey => {
            let r: KeyReq = parse(body)?;
            kms.enable_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
            Ok(None)
        }
        O::DisableKey => {
            let r: KeyReq = parse(body)?;
            kms.disable_key(ctx, &key_ref(r.key_id, "keyId")?).await?;
            Ok(None)
        }
        O::ScheduleKeyDeletion => {
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
        O::CancelKeyDeletion => {
            let r: KeyReq = parse(body)?;
            let arn = kms
                .cancel_key_deletion(ctx, &key_ref(r.key_id, "keyId")?)
                .await?;
            done(json!({ "KeyId": arn }))
        }
        O::ReplicateKey => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let input = crate::kms::ReplicateKeyInput {
                replica_region: required(r.replica_region, "replicaRegion")?,
                policy: r.policy,
                bypass_policy_lockout_safety_check: r
                    .bypass_policy_lockout_safety_check
                    .unwrap_or(false),
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
        O::UpdatePrimaryRegion => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let region = required(r.primary_region, "primaryRegion")?;
            kms.update_primary_region(ctx, &key, region).await?;
            Ok(None)
        }
        O::UpdateKeyDescription => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let d = required(r.description, "description")?;
            kms.update_key_description(ctx, &key, d).await?;
            Ok(None)
        }
        O::CreateAlias | O::UpdateAlias => {
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
        O::DeleteAlias => {
            let r: AliasReq = parse(body)?;
            kms.delete_alias(ctx, &alias_name(r.alias_name)?).await?;
            Ok(None)
        }
        O::ListAliases => {
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
        O::TagResource => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let t = tags(Some(required(r.tags, "tags")?))?;
            kms.tag_resource(ctx, &key, t).await?;
            Ok(None)
        }
        O::UntagResource => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let keys = required(r.tag_keys, "tagKeys")?;
            kms.untag_resource(ctx, &key, keys).await?;
            Ok(None)
        }
        O::ListResourceTags => {
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
        O::GetKeyPolicy => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let name = r.policy_name.unwrap_or_else(|| "default".into());
            let policy = kms.get_key_policy(ctx, &key, Some(&name)).await?;
            done(json!({ "Policy": policy, "PolicyName": name }))
        }
        O::PutKeyPolicy => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let policy = required(r.policy, "policy")?;
            length(&policy, "policy", 1, 131_072)?;
            let bypass = r.bypass_policy_lockout_safety_check.unwrap_or(false);
            kms.put_key_policy(ctx, &key, r.policy_name.as_deref(), policy, bypass)
                .await?;
            Ok(None)
        }
        O::ListKeyPolicies => {
            let r: KeyReq = parse(body)?;
            let names = kms
                .list_key_policies(ctx, &key_ref(r.key_id, "keyId")?)
                .await?;
            done(json!({ "PolicyNames": names, "Truncated": false }))
        }
        O::Encrypt => {
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
        O::Decrypt => {
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
        O::ReEncrypt => {
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
        O::GenerateDataKey | O::GenerateDataKeyWithoutPlaintext => {
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
        O::GenerateRandom => {
            let r: RandomReq = parse(body)?;
            let bytes = kms
                .generate_random(ctx, r.number_of_bytes, r.custom_key_store_id.as_deref())
                .await?;
            Ok(Some(answer::random(bytes)))
        }
        O::EnableKeyRotation => {
            let r: KeyReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            kms.enable_key_rotation(ctx, &key, r.rotation_period_in_days)
                .await?;
            Ok(None)
        }
        O::DisableKeyRotation => {
            let r: KeyReq = parse(body)?;
            kms.disable_key_rotation(ctx, &key_ref(r.key_id, "keyId")?)
                .await?;
            Ok(None)
        }
        O::GetKeyRotationStatus => {
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
        O::RotateKeyOnDemand => {
            let r: KeyReq = parse(body)?;
            let arn = kms
                .rotate_key_on_demand(ctx, &key_ref(r.key_id, "keyId")?)
                .await?;
            done(json!({ "KeyId": arn }))
        }
        O::ListKeyRotations => {
            let r: KeyReq = parse(body)?;
            marker(&r.marker)?;
            let key = key_ref(r.key_id, "keyId")?;
            let all = match r.include_key_material.as_deref() {
                None | Some("ROTATIONS_ONLY") => false,
                Some("ALL_KEY_MATERIAL") => true,
                Some(other) => {
                    return Err(super::error::ProtocolError::Validation(texts::validation(&[
                        texts::constraint(
                            other,
                            "includeKeyMaterial",
                            &texts::enum_set("[ALL_KEY_MATERIAL, ROTATIONS_ONLY]"),
                        ),
                    ]))
                    .into())
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
        O::CreateGrant => {
            let r: GrantReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            grant_tokens(&r.grant_tokens)?;
            if r.grantee_service_principal.is_some() || r.retiring_service_principal.is_some() {
                return Err(crate::kms::KmsError::UnsupportedOperation(
                    "Service principals are not supported by this server".into(),
                )
                .into());
            }
            let grantee = required(r.grantee_principal, "granteePrincipal")?;
            length(&grantee, "granteePrincipal", 1, 256)?;
            let operations = required(r.operations, "operations")?;
            let constraints = match r.constraints {
                Some(c) if c.source_arn.is_some() => {
                    return Err(crate::kms::KmsError::UnsupportedOperation(
                        "The SourceArn grant constraint is not supported".into(),
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
        O::ListGrants => {
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
        O::ListRetirableGrants => {
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
        O::RetireGrant => {
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
        O::RevokeGrant => {
            let r: GrantReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let id = required(r.grant_id, "grantId")?;
            kms.revoke_grant(ctx, &key, &id).await?;
            Ok(None)
        }
        O::Sign | O::Verify => {
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
        O::GetParametersForImport => {
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
        O::ImportKeyMaterial => {
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
                    return Err(crate::kms::KmsError::Validation(
                        "ValidTo is not a valid timestamp".into(),
                    )
                    .into())
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
        O::DeleteImportedKeyMaterial => {
            let r: ImportReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            let (arn, material_id) = kms
                .delete_imported_key_material(ctx, &key, r.key_material_id.as_deref())
                .await?;
            done(json!({ "KeyId": arn, "KeyMaterialId": material_id }))
        }
        O::GetPublicKey => {
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
        O::GetKeyLastUsage => {
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
        O::DeriveSharedSecret => {
            let r: DeriveReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            grant_tokens(&r.grant_tokens)?;
            // The model's validation has checked the algorithm (ECDH) and the key's presence.
            let public_key = required(r.public_key, "publicKey")?;
            if r.recipient.is_some() {
                return Err(crate::kms::KmsError::UnsupportedOperation(
                    "Recipient (attested enclaves) is not supported by this server".into(),
                )
                .into());
            }
            let (arn, secret) = kms.derive_shared_secret(ctx, &key, &public_key).await?;
            Ok(Some(answer::shared_secret(arn, secret)))
        }
        O::Encapsulate => {
            let r: KemReq = parse(body)?;
            let key = key_ref(r.key_id, "keyId")?;
            grant_tokens(&r.grant_tokens)?;
            // The model's validation has checked the algorithm (ML_KEM).
            let (arn, ciphertext, secret) = kms.encapsulate(ctx, &key).await?;
            Ok(Some(answer::kem(arn, Some(&ciphertext), secret)))
        }
        O::Decapsulate => {
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
        O::GenerateMac | O::VerifyMac => {
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
        O::GenerateDataKeyPair | O::GenerateDataKeyPairWithoutPlaintext => {
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
        O::CreateCustomKeyStore => {
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
        O::DescribeCustomKeyStores => {
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
        O::ConnectCustomKeyStore | O::DisconnectCustomKeyStore | O::DeleteCustomKeyStore => {
            let r: KeyStoreReq = parse(body)?;
            let id = required(r.custom_key_store_id, "customKeyStoreId")?;
            match op {
                O::ConnectCustomKeyStore => kms.connect_custom_key_store(ctx, &id).await?,
                O::DisconnectCustomKeyStore => kms.disconnect_custom_key_store(ctx, &id).await?,
                _ => kms.delete_custom_key_store(ctx, &id).await?,
            }
            done(json!({}))
        }
        O::UpdateCustomKeyStore => {
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
    }
}
