//! The operations' handlers: parse the request members (after the model's validation), call
//! the domain, answer — one module per operation group (the table's `group` column), one
//! function per operation (or per pair sharing a request shape); `dispatch` names them all.
//! Shared request checks and answer shapes live here. Secret-bearing answers are typed
//! (`api::answer`); the others are JSON values with absent members dropped.

mod aliases;
mod asymmetric;
mod crypto;
mod grants;
mod import;
mod key_stores;
mod keys;
mod multi_region;
mod rotation;

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

/// The operation's handler: one function per operation (or pair sharing a request shape), in
/// the module of its group (the table's `group` column). The match is exhaustive, so a row
/// without a handler does not compile.
pub async fn dispatch(kms: &Kms, ctx: &RequestContext, op: Operation, body: &[u8]) -> Out {
    use Operation as O;
    let call = Call { kms, ctx, op, body };
    match op {
        O::CreateKey => keys::create_key(call).await,
        O::DescribeKey => keys::describe_key(call).await,
        O::ListKeys => keys::list_keys(call).await,
        O::EnableKey => keys::enable_key(call).await,
        O::DisableKey => keys::disable_key(call).await,
        O::ScheduleKeyDeletion => keys::schedule_key_deletion(call).await,
        O::CancelKeyDeletion => keys::cancel_key_deletion(call).await,
        O::UpdateKeyDescription => keys::update_key_description(call).await,
        O::TagResource => keys::tag_resource(call).await,
        O::UntagResource => keys::untag_resource(call).await,
        O::ListResourceTags => keys::list_resource_tags(call).await,
        O::GetKeyPolicy => keys::get_key_policy(call).await,
        O::PutKeyPolicy => keys::put_key_policy(call).await,
        O::ListKeyPolicies => keys::list_key_policies(call).await,
        O::GetKeyLastUsage => keys::get_key_last_usage(call).await,
        O::ReplicateKey => multi_region::replicate_key(call).await,
        O::UpdatePrimaryRegion => multi_region::update_primary_region(call).await,
        O::CreateAlias | O::UpdateAlias => aliases::create_or_update_alias(call).await,
        O::DeleteAlias => aliases::delete_alias(call).await,
        O::ListAliases => aliases::list_aliases(call).await,
        O::Encrypt => crypto::encrypt(call).await,
        O::Decrypt => crypto::decrypt(call).await,
        O::ReEncrypt => crypto::re_encrypt(call).await,
        O::GenerateDataKey | O::GenerateDataKeyWithoutPlaintext => {
            crypto::generate_data_key(call).await
        }
        O::GenerateRandom => crypto::generate_random(call).await,
        O::EnableKeyRotation => rotation::enable_key_rotation(call).await,
        O::DisableKeyRotation => rotation::disable_key_rotation(call).await,
        O::GetKeyRotationStatus => rotation::get_key_rotation_status(call).await,
        O::RotateKeyOnDemand => rotation::rotate_key_on_demand(call).await,
        O::ListKeyRotations => rotation::list_key_rotations(call).await,
        O::CreateGrant => grants::create_grant(call).await,
        O::ListGrants => grants::list_grants(call).await,
        O::ListRetirableGrants => grants::list_retirable_grants(call).await,
        O::RetireGrant => grants::retire_grant(call).await,
        O::RevokeGrant => grants::revoke_grant(call).await,
        O::Sign | O::Verify => asymmetric::sign_or_verify(call).await,
        O::GetPublicKey => asymmetric::get_public_key(call).await,
        O::DeriveSharedSecret => asymmetric::derive_shared_secret(call).await,
        O::Encapsulate => asymmetric::encapsulate(call).await,
        O::Decapsulate => asymmetric::decapsulate(call).await,
        O::GenerateMac | O::VerifyMac => asymmetric::generate_or_verify_mac(call).await,
        O::GenerateDataKeyPair | O::GenerateDataKeyPairWithoutPlaintext => {
            asymmetric::generate_data_key_pair(call).await
        }
        O::GetParametersForImport => import::get_parameters_for_import(call).await,
        O::ImportKeyMaterial => import::import_key_material(call).await,
        O::DeleteImportedKeyMaterial => import::delete_imported_key_material(call).await,
        O::CreateCustomKeyStore => key_stores::create_custom_key_store(call).await,
        O::DescribeCustomKeyStores => key_stores::describe_custom_key_stores(call).await,
        O::ConnectCustomKeyStore | O::DisconnectCustomKeyStore | O::DeleteCustomKeyStore => {
            key_stores::connect_disconnect_or_delete(call).await
        }
        O::UpdateCustomKeyStore => key_stores::update_custom_key_store(call).await,
    }
}

/// One call of an operation, as its handler gets it.
#[derive(Clone, Copy)]
struct Call<'a> {
    kms: &'a Kms,
    ctx: &'a RequestContext,
    op: Operation,
    body: &'a [u8],
}

/// An answer of JSON members (nulls dropped, as AWS omits absent members).
fn done(v: Value) -> Out {
    Ok(Some(Reply::Json(compact(v))))
}
