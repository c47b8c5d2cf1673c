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
/// The states of multi-Region keys, in the same wording (AWS's own texts for these are not
/// published; these follow the developer guide's key-state table and the texts above).
pub fn pending_replica_deletion(arn: &str) -> String {
    format!("{arn} is pending replica deletion.")
}
pub fn creating(arn: &str) -> String {
    format!("{arn} is creating.")
}
pub fn updating(arn: &str) -> String {
    format!("{arn} is updating.")
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

/// `DryRunOperationException`: the request was authorized and `DryRun` was set.
pub const DRY_RUN: &str = "The request would have succeeded, but the DryRun option is set.";

/// An algorithm the key's spec does not have (`InvalidKeyUsageException`): recorded for MAC
/// algorithms; local-kms answers signing algorithms the same way, and so do we for signing and
/// encryption algorithms.
pub fn algorithm_incompatible(algorithm: &str, key_spec: &str) -> String {
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

/// An alias given where the operation takes only a key id or key ARN (`InvalidArnException`;
/// recorded in AWS CLI transcripts of GetKeyPolicy and CreateGrant).
pub const ALIAS_NOT_SUPPORTED: &str = "Key Aliases are not supported for this operation.";

/// Why IAM refused (the reason clause of AWS's `AccessDeniedException` texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The key policy does not allow the caller (nor its account).
    NoResourcePolicy,
    /// The key policy hands the decision to IAM and no identity policy allows it; also every
    /// account-scoped action (CreateKey, ListKeys, …).
    NoIdentityPolicy,
    ExplicitResource,
    ExplicitIdentity,
}

/// What was refused, in the shapes AWS KMS answers (recorded in real AWS output: Terraform
/// logs, CLI transcripts, the IAM Identity Center troubleshooting guide).
#[derive(Debug, Clone, Copy)]
pub enum Refusal<'a> {
    /// An action on a named resource (a key ARN, an alias ARN, or `*`).
    Key(&'a str, &'a str, Denial),
    /// Decrypt or ReEncryptFrom on the key a ciphertext names (AWS does not reveal the key).
    Ciphertext(&'a str, Denial),
    /// A key of another account (AWS does not say whether it exists).
    OtherAccount(&'a str),
}

/// `AccessDeniedException`: `User: <arn> is not authorized to perform: <action> on resource:
/// <arn> because no resource-based policy allows the <action> action` and its siblings.
pub fn access_denied(caller: &str, refusal: Refusal<'_>) -> String {
    let reason = |action: &str, why: Denial| match why {
        Denial::NoResourcePolicy => {
            format!("because no resource-based policy allows the {action} action")
        }
        Denial::NoIdentityPolicy => {
            format!("because no identity-based policy allows the {action} action")
        }
        Denial::ExplicitResource => "with an explicit deny in a resource-based policy".into(),
        Denial::ExplicitIdentity => "with an explicit deny in an identity-based policy".into(),
    };
    match refusal {
        Refusal::Key(action, resource, why) => format!(
            "User: {caller} is not authorized to perform: {action} on resource: {resource} {}",
            reason(action, why)
        ),
        Refusal::Ciphertext(action, why) => format!(
            "User: {caller} is not authorized to perform: {action} on the resource associated \
             with this ciphertext {}",
            reason(action, why)
        ),
        Refusal::OtherAccount(action) => format!(
            "User: {caller} is not authorized to perform: {action} on this resource because the \
             resource does not exist in this Region, no resource-based policies allow access, or \
             a resource-based policy explicitly denies access"
        ),
    }
}

/// ScheduleKeyDeletion with a window inside the model's 1..365 but outside KMS's 7..30 (a
/// service check, not the model's wording; real AWS output quoted in Skyscanner/kms-issuer#8).
pub const PENDING_WINDOW_RANGE: &str = "PendingWindowInDays must be between 7 and 30";

/// CreateGrant whose only operation is CreateGrant (real AWS output quoted in
/// ansible/ansible#31960).
pub const GRANT_ONLY_CREATE_GRANT: &str = "Grants must not contain only the CreateGrant operation.";

/// RetireGrant with neither a grant token nor KeyId and GrantId (LocalStack's provider, which
/// is checked against AWS; no recording of AWS's own answer).
pub const RETIRE_GRANT_NEEDS: &str = "Grant token OR (grant ID, key ID) must be specified";

/// RevokeGrant/RetireGrant naming a grant of another key (LocalStack's provider).
pub fn grant_of_another_key(key_id: &str, grant_id: &str) -> String {
    format!("Invalid KeyId={key_id} specified for grant {grant_id}")
}

/// GetKeyPolicy of a policy name other than `default` (moto and LocalStack's provider agree).
pub const NO_SUCH_POLICY: &str = "No such policy exists";

/// PutKeyPolicy of a policy name other than `default` (LocalStack's provider).
pub const ONLY_DEFAULT_POLICY: &str = "Only default policy is supported";

/// GenerateDataKey with both or neither of KeySpec and NumberOfBytes (moto's text for both
/// cases; no recording of AWS's).
pub const DATA_KEY_SPEC_OR_BYTES: &str = "Please specify either number of bytes or key spec.";

/// CreateKey `MultiRegion=true` with a custom key store (`UnsupportedOperationException`; the
/// restriction is AWS's, its text is not published: the model's style).
pub const MULTI_REGION_IN_CUSTOM_KEY_STORE: &str =
    "You cannot create a multi-Region key in a custom key store.";

/// ReplicateKey of a key that is not a multi-Region primary key, and the operations only a
/// primary key may take (`UnsupportedOperationException`; recorded against AWS for a replica:
/// LocalStack's snapshot `test_replicate_replica_key_should_fail`).
pub fn not_multi_region_primary(arn: &str) -> String {
    format!("{arn} is not a multi-region primary key.")
}

/// ReplicateKey into a Region that already holds a key of the set (`AlreadyExistsException`;
/// LocalStack's KMS provider's text, not pinned by a recorded snapshot).
pub fn replica_exists(key_id: &str, region: &str) -> String {
    format!("Unable to replicate key {key_id} to region {region}, as the key already exist there")
}

/// A Region this deployment does not serve, as AWS refuses a Region that is not enabled
/// (`UnsupportedOperationException`; AWS's text is not published: the model's style).
pub fn region_not_enabled(region: &str) -> String {
    format!("The Region {region} is not enabled for this account.")
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
