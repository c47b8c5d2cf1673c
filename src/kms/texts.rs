//! AWS KMS's own error texts, in one place. Each is what real AWS KMS answers (from recorded
//! responses, the API reference and the developer guide); where AWS's text is not known, the
//! model's style is kept ("1 validation error detected: …"). Callers build errors only from
//! these, so a text is fixed here once for every path that gives it.

use crate::model::{KeyUsage, Origin};

/// The model's validation wording for one or more violated constraints.
pub fn validation(errors: &[String]) -> String {
    match errors {
        [one] => format!("1 validation error detected: {one}"),
        many => format!(
            "{} validation errors detected: {}",
            many.len(),
            many.join("; ")
        ),
    }
}

/// One violated constraint: `Value '<v>' at '<path>' failed to satisfy constraint: <what>`.
pub fn constraint(value: &str, path: &str, what: &str) -> String {
    format!("Value '{value}' at '{path}' failed to satisfy constraint: {what}")
}

/// The same for a value that is not quoted (secrets, blobs): `Value at '<path>' …`.
pub fn constraint_unquoted(path: &str, what: &str) -> String {
    format!("Value at '{path}' failed to satisfy constraint: {what}")
}

/// A required member that is absent (or JSON null).
pub fn not_null(path: &str) -> String {
    format!("Value null at '{path}' failed to satisfy constraint: Member must not be null")
}

/// `allowed` is the bracketed list, `[A, B]`.
pub fn enum_set(allowed: &str) -> String {
    format!("Member must satisfy enum value set: {allowed}")
}

pub fn at_least(min: i64) -> String {
    format!("Member must have value greater than or equal to {min}")
}

pub fn at_most(max: i64) -> String {
    format!("Member must have value less than or equal to {max}")
}

pub fn length_at_most(max: usize) -> String {
    format!("Member must have length less than or equal to {max}")
}

pub fn length_at_least(min: usize) -> String {
    format!("Member must have length greater than or equal to {min}")
}

/// GenerateRandom without `NumberOfBytes`.
pub const NUMBER_OF_BYTES_REQUIRED: &str = "NumberOfBytes is required.";

/// A key of the wrong usage for an operation (`InvalidKeyUsageException`).
pub fn key_usage_not_valid(arn: &str, usage: KeyUsage, operation: &str) -> String {
    format!("{arn} key usage is {usage} which is not valid for {operation}.")
}

/// An operation for another origin (`UnsupportedOperationException`).
pub fn origin_not_valid(arn: &str, origin: Origin) -> String {
    format!("{arn} origin is {origin} which is not valid for this operation.")
}

/// Key states (`DisabledException`, `KMSInvalidStateException`).
pub fn disabled(arn: &str) -> String {
    format!("{arn} is disabled.")
}
pub fn pending_deletion(arn: &str) -> String {
    format!("{arn} is pending deletion.")
}
pub fn pending_import(arn: &str) -> String {
    format!("{arn} is pending import.")
}

/// Sign/Verify with `MessageType=DIGEST` of the wrong length.
pub fn digest_invalid_length(algorithm: &str) -> String {
    format!("Digest is invalid length for algorithm {algorithm}.")
}

/// Sign/Verify with a `MessageType` the signing algorithm does not take (no AWS text is
/// published; the model's style).
pub fn message_type_invalid(message_type: &str, algorithm: &str) -> String {
    format!("MessageType {message_type} is not valid for signing algorithm {algorithm}")
}

/// RSA Encrypt over the OAEP limit.
pub fn plaintext_too_large(algorithm: &str, key_spec: &str, max: usize) -> String {
    format!(
        "Algorithm {algorithm} and key spec {key_spec} cannot encrypt data larger than {max} bytes."
    )
}

/// An alias name without its prefix (`ValidationException`).
pub const ALIAS_PREFIX: &str = "Alias must start with the prefix \"alias/\". Please see \
     https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html";

/// Tags (`TagException`).
pub const DUPLICATE_TAG_KEYS: &str = "Duplicate tag keys";
pub const TOO_MANY_TAGS: &str = "Too many tags";
pub const RESERVED_TAG_PREFIX: &str = "Tags beginning with aws: are reserved";

/// A key ARN of another region (`NotFoundException`).
pub fn invalid_arn_region(region: &str) -> String {
    format!("Invalid arn {region}")
}

/// A ciphertext whose key is not the one the request names (`IncorrectKeyException`).
pub const INCORRECT_KEY: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";

/// `ThrottlingException`: a quota is exhausted, or the token's key generation lane is full
/// (the developer guide's "Throttling" page shows this text).
pub const THROTTLED: &str =
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";

/// A MAC algorithm the HMAC key's spec does not have (`InvalidKeyUsageException`).
pub fn mac_algorithm_incompatible(algorithm: &str, key_spec: &str) -> String {
    format!("Algorithm {algorithm} is incompatible with key spec {key_spec}.")
}

/// CreateKey of an asymmetric or HMAC spec without `KeyUsage`.
pub const KEY_USAGE_REQUIRED: &str =
    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.";

/// ImportKeyMaterial with `KEY_MATERIAL_EXPIRES` and no `ValidTo`.
pub const VALID_TO_REQUIRED: &str =
    "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES";

/// RotateKeyOnDemand past the per-key limit (`LimitExceededException`).
pub fn on_demand_rotation_limit(arn: &str) -> String {
    format!(
        "The on-demand rotations limit has been reached for the given keyId. No more on-demand \
         rotations can be performed for this key: {arn}"
    )
}

/// ImportKeyMaterial `NEW_KEY_MATERIAL` while another material waits for its rotation
/// (`KMSInvalidStateException`; AWS's recorded answer, LocalStack's snapshot
/// `test_import_key_material_raises_if_there_is_already_key_material_pending`).
pub fn new_material_while_pending(new_id: &str, arn: &str, pending_id: &str) -> String {
    format!(
        "New key material (id: {new_id}) cannot be imported into KMS key {arn}, because another \
         key material (id: {pending_id}) is pending rotation."
    )
}

/// RotateKeyOnDemand of an imported key without new material (`KMSInvalidStateException`;
/// AWS's recorded answer, LocalStack's snapshot
/// `test_rotate_key_on_demand_raises_for_no_pending_key_material`).
pub fn no_material_pending_rotation(arn: &str) -> String {
    format!("No available key material pending rotation for the key: {arn}.")
}

/// Material that is not (the requested) material of the key (`IncorrectKeyMaterialException`).
pub const INCORRECT_KEY_MATERIAL: &str =
    "The key material doesn't match the key material previously imported into this key.";

// The following have no published AWS text; they keep the model's style.

/// `ImportType`, `KeyMaterialId` or `KeyMaterialDescription` for an asymmetric or HMAC key,
/// whose one material cannot change (`ValidationException`).
pub const MATERIAL_OPTIONS_SYMMETRIC_ONLY: &str = "ImportType, KeyMaterialId and \
     KeyMaterialDescription are valid only for symmetric encryption KMS keys.";

/// `KeyMaterialId` together with `NEW_KEY_MATERIAL` (`ValidationException`).
pub const MATERIAL_ID_WITH_NEW: &str =
    "KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL.";

/// `NEW_KEY_MATERIAL` whose material is already one of the key's (`IncorrectKeyMaterialException`).
pub fn material_already_associated(id: &str, arn: &str) -> String {
    format!("Key material (id: {id}) is already associated with KMS key {arn}.")
}

/// `EXISTING_KEY_MATERIAL` with a `KeyMaterialId` the material does not have
/// (`IncorrectKeyMaterialException`).
pub fn material_id_mismatch(id: &str) -> String {
    format!("The key material does not match the key material ID {id}.")
}

/// DeleteImportedKeyMaterial naming material the key has not got (`NotFoundException`).
pub fn material_not_found(id: &str, arn: &str) -> String {
    format!("Key material (id: {id}) is not associated with KMS key {arn}.")
}
