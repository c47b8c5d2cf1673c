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

/// `NotFoundException` for an ARN the request may not name. For a key or alias ARN of another
/// region `what` is the region (recorded: LocalStack's snapshot
/// `test_get_key_in_different_region`, `Invalid arn us-west-2`); for a malformed ARN, or one of
/// another account where the operation allows none, it is the whole ARN (no AWS recording of
/// those: the recorded wording with the value AWS cannot resolve).
pub fn invalid_arn(what: &str) -> String {
    format!("Invalid arn {what}")
}

/// A ciphertext whose key is not the one the request names (`IncorrectKeyException`).
pub const INCORRECT_KEY: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";

/// `ThrottlingException`: a quota is exhausted, or the token's key generation lane is full
/// (the developer guide's "Throttling" page shows this text).
pub const THROTTLED: &str =
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";

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

// ---------------------------------------------------------------------------------------------
// Keys, ids and key states (`kms/mod.rs`, `ids.rs`, `keys.rs`, `rotation.rs`, `import.rs`,
// `multi_region.rs`).

/// A well-formed key id or ARN that names no key (`NotFoundException`; recorded: LocalStack's
/// snapshots `test_get_key_does_not_exist`, `test_get_key_in_different_region`; no trailing
/// period, and the ARN is built from the request's region and account even for a bare id).
pub fn key_not_found(arn: &str) -> String {
    format!("Key '{arn}' does not exist")
}

/// An alias that does not exist (`NotFoundException`; recorded in real AWS output quoted in
/// Terraform logs: `Alias arn:aws:kms:us-east-1:<account>:alias/<name> is not found.`).
pub fn alias_not_found(alias_arn: &str) -> String {
    format!("Alias {alias_arn} is not found.")
}

/// A KeyId that is neither a key id, a key ARN, an alias nor an alias ARN (`NotFoundException`;
/// recorded: LocalStack's snapshot `test_get_key_invalid_uuid`, quotes included).
pub fn invalid_key_id(s: &str) -> String {
    format!("Invalid keyId '{s}'")
}

/// A key of a custom key store that is not connected (`KMSInvalidStateException`; AWS's text
/// is not recorded; local-kms (emulator) answers `<key id> is unavailable.`, in the wording of
/// the recorded state texts above).
pub fn unavailable(arn: &str) -> String {
    format!("{arn} is unavailable.")
}

/// CancelKeyDeletion of a key that is not pending deletion (`KMSInvalidStateException`; AWS's
/// text is not recorded; local-kms (emulator) answers `<key id> is not pending deletion.`).
pub fn not_pending_deletion(arn: &str) -> String {
    format!("{arn} is not pending deletion.")
}

/// A request with `DryRun=true` that would have succeeded (`DryRunOperationException`, which
/// AWS answers with status 400; recorded: LocalStack's snapshot
/// `test_generate_data_key_pair_dry_run`).
pub const DRY_RUN: &str = "The request would have succeeded, but the DryRun option is set.";

/// A key policy over this server's limit (`LimitExceededException`; none found for today's
/// AWS, whose model allows 131072 characters and counts 32 KiB as a quota: the model's style).
pub fn policy_too_large(max: usize) -> String {
    format!("Key policy is larger than {max} bytes")
}

/// A key policy AWS refuses (`MalformedPolicyDocumentException`). For a document that is not
/// JSON AWS sends no message (aws/aws-sdk-ruby#1784: the service answers an empty message);
/// for a bad principal, one fixed sentence (recorded AWS output quoted in aws-cdk's pipelines
/// docs and in Terraform runs: "Policy contains a statement with one or more invalid
/// principals."). For other faults no AWS text is known: the policy parser's own explanation.
pub fn malformed_policy(e: &crate::policy::PolicyError) -> String {
    use crate::policy::PolicyError as P;
    match e {
        P::NotJson(_) => String::new(),
        P::InvalidPrincipal(_) => INVALID_PRINCIPALS.to_owned(),
        P::Malformed(why) => why.clone(),
    }
}

/// See `malformed_policy`.
pub const INVALID_PRINCIPALS: &str =
    "Policy contains a statement with one or more invalid principals.";

/// The policy lockout safety check (`MalformedPolicyDocumentException`; real AWS output quoted
/// in a Terraform configuration).
pub const POLICY_LOCKOUT: &str =
    "The new key policy will not allow you to update the key policy in the future.";

/// A Description over the model's 8192 characters, when it reaches the domain (the API layer's
/// model check answers first, in the same words): the model's wording, with the value quoted
/// because the member is not sensitive (as local-kms (emulator) quotes it).
pub fn description_too_long(description: &str) -> String {
    validation(&[constraint(
        description,
        "description",
        &length_at_most(8192),
    )])
}

/// ListKeys, ListAliases, ListGrants, ListResourceTags, ListKeyRotations or
/// DescribeCustomKeyStores with a marker this server did not hand out
/// (`InvalidMarkerException`; AWS's text is not published: the model's style).
pub fn invalid_marker(marker: &str) -> String {
    format!("Invalid marker {marker:?}")
}

// None of the following is an AWS situation (AWS serializes its writes; its limits on versions
// are not reachable): this server's own texts, in the model's style.

/// Concurrent writers of one key exhausted their retries (`ConflictException`), and the
/// store's optimistic-lock fallback.
pub const CONCURRENT_MODIFICATION: &str = "The key is being modified concurrently; retry.";
/// Two requests import into one key at once (`ConflictException`).
pub const IMPORT_IN_PROGRESS: &str = "An import into this key is in progress; retry.";
/// Two requests create the same AWS managed key at once (`ConflictException`).
pub const MANAGED_KEY_BEING_CREATED: &str = "The AWS managed key is being created; retry.";
/// A second rotation while one is in flight (`ConflictException`).
pub fn already_rotating(arn: &str) -> String {
    format!("{arn} is already being rotated")
}
/// The version counter would overflow (`LimitExceededException`).
pub const TOO_MANY_KEY_VERSIONS: &str = "Too many key versions";
pub const TOO_MANY_KEY_MATERIALS: &str = "Too many key materials";

/// The store's fallbacks for records that vanished or limits that were hit between a read and
/// a write (callers that know the case answer with the texts above).
pub const RESOURCE_EXISTS: &str = "Resource already exists";
pub const RESOURCE_NOT_FOUND: &str = "The resource does not exist.";
pub const LIMIT_EXCEEDED: &str = "Limit exceeded";

// ---------------------------------------------------------------------------------------------
// CreateKey (`keys.rs`, `asymmetric.rs`, `api/ops.rs`).

/// CreateKey with both KeySpec and CustomerMasterKeySpec (`ValidationException`; local-kms
/// (emulator) has this text, and a tool's comment quotes the same sentence).
pub const KEY_SPEC_AND_CUSTOMER_MASTER_KEY_SPEC: &str = "You cannot specify KeySpec and \
     CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.";

/// A KeyUsage the KeySpec does not have (`ValidationException`; recorded: LocalStack's snapshot
/// `test_derive_shared_secret`, `KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048`,
/// no period).
pub fn key_usage_incompatible(usage: KeyUsage, key_spec: &str) -> String {
    format!("KeyUsage {usage} is not compatible with KeySpec {key_spec}")
}

// No AWS text is published for these custom key store restrictions (the model's style).

/// CreateKey in a custom key store of another spec or usage (`UnsupportedOperationException`).
pub const CUSTOM_KEY_STORE_SYMMETRIC_ONLY: &str =
    "Keys in a custom key store must be SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys";
/// CreateKey with a CustomKeyStoreId and another Origin (`ValidationException`).
pub const CUSTOM_KEY_STORE_ORIGIN: &str =
    "Keys in a custom key store must have Origin AWS_CLOUDHSM";
/// Origin AWS_CLOUDHSM without a CustomKeyStoreId (`ValidationException`).
pub const CLOUDHSM_NEEDS_STORE: &str = "Origin AWS_CLOUDHSM needs a CustomKeyStoreId";

// This server's limitations (AWS supports all of these; `UnsupportedOperationException`).

pub fn mechanism_unsupported(what: &str) -> String {
    format!("{what} is not supported by this server's key store (the token lacks the mechanism)")
}
pub fn key_spec_unsupported(key_spec: &str) -> String {
    format!("KeySpec {key_spec} is not supported by this server")
}
pub fn external_key_spec_unsupported(key_spec: &str, importable: &str) -> String {
    format!(
        "KeySpec {key_spec} with Origin EXTERNAL is not supported by this key store; import is \
         available for {importable}"
    )
}
pub fn origin_unsupported(origin: Origin) -> String {
    format!("Origin {origin} is not supported; use AWS_KMS or EXTERNAL")
}
pub const SERVICE_PRINCIPALS_UNSUPPORTED: &str =
    "Service principals are not supported by this server";
pub const SOURCE_ARN_UNSUPPORTED: &str = "The SourceArn grant constraint is not supported";
pub const RECIPIENT_UNSUPPORTED: &str =
    "Recipient (attested enclaves) is not supported by this server";

// ---------------------------------------------------------------------------------------------
// Asymmetric keys (`asymmetric.rs`).

/// Encrypt/Decrypt with an RSA key and an EncryptionContext (`ValidationException`; AWS's text
/// is not recorded; two independent emulators (floci and a Go emulator) answer this sentence,
/// whose "CMKs" dates it before AWS's 2021 renaming, so it is likely captured from AWS).
pub const ENCRYPTION_CONTEXT_ASYMMETRIC: &str =
    "EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs.";

/// GetPublicKey of a symmetric or HMAC key (`UnsupportedOperationException`; none found: the
/// model's style).
pub fn not_asymmetric(arn: &str) -> String {
    format!("{arn} is not an asymmetric KMS key; GetPublicKey needs one")
}

/// Decrypt of an RSA ciphertext without KeyId (`ValidationException`; none found: the API
/// reference says KeyId is required for asymmetric keys).
pub const ASYMMETRIC_DECRYPT_NEEDS_KEY_ID: &str =
    "KeyId is required to decrypt with an asymmetric KMS key";

// ---------------------------------------------------------------------------------------------
// Aliases (`aliases.rs`, `ids.rs`).

/// CreateAlias of a name in use (`AlreadyExistsException`; real AWS output in Terraform logs:
/// `An alias with the name arn:aws:kms:<region>:<account>:alias/<name> already exists`).
pub fn alias_exists(alias_arn: &str) -> String {
    format!("An alias with the name {alias_arn} already exists")
}

/// A key with the most aliases this server allows (`LimitExceededException`; none found).
pub fn alias_limit(max: usize) -> String {
    format!("A key can have at most {max} aliases")
}

/// UpdateAlias to a key of another key usage (`ValidationException`; local-kms's text
/// (emulator), which its author took from AWS — only its key-*type* variant is marked there as
/// not matching AWS).
pub fn alias_usage_change(alias: &str, from: KeyUsage, to: KeyUsage) -> String {
    format!(
        "Alias {alias} cannot be changed from a CMK with key usage {from} to a CMK with key usage \
         {to}. The key usage of the current CMK and the new CMK must be the same."
    )
}

/// UpdateAlias to a key of the same usage but another key spec (`ValidationException`; none
/// found: the usage sentence above, for the key spec).
pub fn alias_spec_change(alias: &str, from: &str, to: &str) -> String {
    format!(
        "Alias {alias} cannot be changed from a CMK with key spec {from} to a CMK with key spec \
         {to}. The key spec of the current CMK and the new CMK must be the same."
    )
}

/// An alias name the model refuses (longer than 256 characters, or outside
/// `^[a-zA-Z0-9:/_-]+$`), when it reaches the domain: the API layer's model check answers first,
/// in these words (`ValidationException`; moto (emulator) answers the same).
pub fn alias_name_constraint(name: &str, what: &str) -> String {
    validation(&[constraint(name, "aliasName", what)])
}

/// `alias/` with nothing after it, which the model's pattern allows (`InvalidAliasNameException`,
/// the code the API reference gives for an invalid alias name; its text is not published).
pub fn alias_name_empty(name: &str) -> String {
    format!("Alias name {name:?} must have a name after 'alias/'")
}

/// The model's pattern for alias and grant names.
pub const NAME_PATTERN: &str = "^[a-zA-Z0-9:/_-]+$";

pub fn pattern(p: &str) -> String {
    format!("Member must satisfy regular expression pattern: {p}")
}

// ---------------------------------------------------------------------------------------------
// Grants (`grants.rs`). AWS's texts are not published for most of these (codes from the API
// reference); ours keep the model's style unless marked.

/// A grant token that is not one of ours (`InvalidGrantTokenException`).
pub const INVALID_GRANT_TOKEN: &str = "The grant token is not valid.";

/// A grantee or retiring principal that is not an account id or IAM principal ARN
/// (`ValidationException`).
pub fn invalid_principal(member: &str, principal: &str) -> String {
    format!(
        "{member} {principal:?} is not a valid principal: use an account id or an IAM user, role \
         or root ARN"
    )
}

/// CreateGrant with no operations (`ValidationException`).
pub const OPERATIONS_EMPTY: &str = "Operations must not be empty";

/// An unknown grant operation at 1-based `position`, when it reaches the domain (the API
/// layer's model check answers first, in these words).
pub fn grant_operation_unknown(position: usize, op: &str, allowed: &[&str]) -> String {
    validation(&[constraint(
        op,
        &format!("operations.{position}.member"),
        &enum_set(&format!("[{}]", allowed.join(", "))),
    )])
}

/// A grant Name the model refuses, when it reaches the domain (the model's wording).
pub fn grant_name_constraint(name: &str, what: &str) -> String {
    validation(&[constraint(name, "name", what)])
}

/// Grant constraints beyond the documented limits (`ValidationException`).
pub const GRANT_CONSTRAINT_LIMITS: &str =
    "A grant constraint can have at most 8 pairs of at most 384 characters";

/// A grantee delegating more than its grant allows (`AccessDeniedException`).
pub fn grant_delegation_operations(caller: &str, own: &str) -> String {
    format!("User: {caller} may only delegate the operations of its own grant ({own})")
}
pub fn grant_delegation_constraints(caller: &str) -> String {
    format!(
        "User: {caller} may only delegate grants with constraints at least as strict as its own \
         grant's"
    )
}

/// A grant operation the key's spec or usage does not have (`ValidationException`).
pub fn grant_operation_not_for_key(op: &str, key_spec: &str) -> String {
    format!("Grant operation {op} is not valid for a {key_spec} key")
}

/// A key with the most grants this server allows (`LimitExceededException`).
pub fn grant_limit(arn: &str, max: usize) -> String {
    format!("{arn} has reached the limit of {max} grants")
}

/// ListRetirableGrants for a principal of another account (`AccessDeniedException`).
pub fn retirable_grants_other_account(caller: &str) -> String {
    format!(
        "User: {caller} is not authorized to list grants retirable by a principal of another \
         account"
    )
}

// ---------------------------------------------------------------------------------------------
// Custom key stores (`keystores.rs`). No recording, transcript or AWS-validated emulator text
// exists for any custom key store error (LocalStack, moto and local-kms do not implement them;
// the one emulator that does, fakecloud, uses its own sentences, which contradict recorded AWS
// texts elsewhere). The codes are the API reference's; where the check is a model constraint
// the model's wording is used (the API layer's model check answers first, in the same words);
// the rest are ours, in the model's style.

pub fn key_store_not_found(id: &str) -> String {
    format!("Custom key store {id} does not exist")
}
pub fn key_store_not_connected(id: &str, state: &str) -> String {
    format!("Custom key store {id} is not connected (state {state})")
}
pub fn key_store_type_unsupported(store_type: &str) -> String {
    format!(
        "Custom key store type {store_type} is not supported; this server maps AWS_CLOUDHSM key \
         stores onto PKCS#11 tokens"
    )
}
/// A member AWS_CLOUDHSM stores need (`CloudHsmClusterId`, `KeyStorePassword`,
/// `TrustAnchorCertificate`).
pub fn required_for_cloudhsm(member: &str) -> String {
    format!("{member} is required for AWS_CLOUDHSM key stores")
}
/// A key store name outside the model's 1..256 at `path` (`customKeyStoreName`,
/// `newCustomKeyStoreName`).
pub fn key_store_name_length(name: &str, path: &str) -> String {
    let what = if name.is_empty() {
        length_at_least(1)
    } else {
        length_at_most(256)
    };
    validation(&[constraint(name, path, &what)])
}
/// A CloudHsmClusterId outside the model's pattern.
pub fn cluster_id_pattern(cluster: &str) -> String {
    validation(&[constraint(
        cluster,
        "cloudHsmClusterId",
        &pattern("cluster-[2-7a-zA-Z]{11,16}"),
    )])
}
/// A KeyStorePassword outside the model's 7..32 (a sensitive member: the value is not quoted).
pub fn key_store_password_length(len: usize) -> String {
    let what = if len < 7 {
        length_at_least(7)
    } else {
        length_at_most(32)
    };
    validation(&[constraint_unquoted("keyStorePassword", &what)])
}
pub fn key_store_name_in_use(name: &str) -> String {
    format!("A custom key store named {name} already exists")
}
pub const KEY_STORE_NAME_OR_CLUSTER_IN_USE: &str =
    "The name or cluster is already used by another custom key store";
pub const KEY_STORE_RENAME_IN_USE: &str = "Another custom key store has that name";
pub fn cluster_in_use(cluster: &str) -> String {
    format!("Cluster {cluster} is already used by another custom key store")
}
pub fn key_store_limit(max: usize) -> String {
    format!("An account can have at most {max} custom key stores")
}
pub fn cluster_not_found(cluster: &str) -> String {
    format!("No token labelled {cluster} is present")
}
pub const KEY_STORE_ID_OR_NAME: &str = "Specify CustomKeyStoreId or CustomKeyStoreName, not both";
pub fn key_store_failed(id: &str, error: &str) -> String {
    format!("Custom key store {id} is FAILED ({error}); disconnect it before connecting again")
}
pub fn key_store_already_disconnected(id: &str) -> String {
    format!("Custom key store {id} is already disconnected")
}
pub fn key_store_connected_update(id: &str) -> String {
    format!("Disconnect custom key store {id} before changing its password or cluster")
}
pub fn key_store_connected_delete(id: &str) -> String {
    format!("Disconnect custom key store {id} before deleting it")
}
pub fn cluster_not_related(cluster: &str, current: &str) -> String {
    format!("Cluster {cluster} is not related to {current}: it does not hold this store's keys")
}
pub fn key_store_has_keys(id: &str) -> String {
    format!("Custom key store {id} still has KMS keys; delete them first")
}
/// The store's fallback when a key store still holds keys.
pub const KEY_STORE_HAS_KEYS: &str = "The custom key store still contains KMS keys.";

// ---------------------------------------------------------------------------------------------
// Import (`import.rs`, `api/ops.rs`).

/// EncryptedKeyMaterial whose length cannot come from the import parameters' wrapping key and
/// algorithm (`ValidationException`; real AWS output quoted in local-kms's source: `An error
/// occurred (ValidationException) when calling the ImportKeyMaterial operation: Invalid
/// encrypted key size.`).
pub const INVALID_ENCRYPTED_KEY_SIZE: &str = "Invalid encrypted key size.";

/// ValidTo not in the future (`ValidationException`; local-kms (emulator) has the same text).
pub const VALID_TO_IN_PAST: &str = "ValidTo must be in the future";

// The API reference documents these restrictions without a text (the model's style).

pub const VALID_TO_TOO_FAR: &str = "ValidTo must be at most 365 days in the future";
pub const VALID_TO_WITHOUT_EXPIRY: &str =
    "ValidTo must not be set when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE";
pub const VALID_TO_NOT_TIMESTAMP: &str = "ValidTo is not a valid timestamp";
pub const PKCS1_V1_5_WRAPPING: &str = "The RSAES_PKCS1_V1_5 wrapping algorithm is deprecated and \
     no longer supported; use RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_*";
pub const SM2_CHINA_ONLY: &str = "WrappingKeySpec SM2 is available only in China Regions";
pub fn rsa_material_too_large_for_oaep(algorithm: &str, key_spec: &str) -> String {
    format!(
        "WrappingAlgorithm {algorithm} cannot wrap {key_spec} key material (an RSA private key is \
         too large for RSA-OAEP); use RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256"
    )
}
pub fn p521_material_too_large(algorithm: &str) -> String {
    format!(
        "WrappingAlgorithm {algorithm} with WrappingKeySpec RSA_2048 cannot wrap ECC_NIST_P521 \
         key material; use a larger WrappingKeySpec or RSA_AES_KEY_WRAP_SHA_1 / \
         RSA_AES_KEY_WRAP_SHA_256"
    )
}

// Import tokens and material: AWS's texts are not published (local-kms, an emulator, sends
// these exceptions without a message); ours say what to do.

pub const INVALID_IMPORT_TOKEN: &str = "The import token is invalid, belongs to another key or \
     was superseded by newer import parameters.";
pub const EXPIRED_IMPORT_TOKEN: &str =
    "The import token has expired; call GetParametersForImport again.";
pub fn material_not_pkcs8(key_spec: &str) -> String {
    format!(
        "The key material is not a DER-encoded PKCS#8 private key that fits KeySpec {key_spec} \
         (wrong key type, size or curve, or an inconsistent key)."
    )
}

// This server's limitations (`UnsupportedOperationException`).

pub fn wrapping_unsupported(algorithm: &str, why: &str, supported: &str) -> String {
    format!(
        "WrappingAlgorithm {algorithm} is not supported by this key store ({why}); it supports: \
         {supported}"
    )
}
pub fn wrapping_key_spec_unsupported(spec: &str) -> String {
    format!("WrappingKeySpec {spec} is not supported by this key store")
}
pub fn import_unsupported(key_spec: &str, importable: &str) -> String {
    format!(
        "Importing {key_spec} key material is not supported by this key store; it imports: \
         {importable}"
    )
}

// ---------------------------------------------------------------------------------------------
// Rotation (`rotation.rs`).

/// ListKeyRotations with `IncludeKeyMaterial=ALL_KEY_MATERIAL` on a key that is not a
/// symmetric encryption key (`ValidationException`; recorded against AWS on 2025-07-16:
/// LocalStack's snapshot `test_list_key_rotations_unsupported_key_types`, at commit 5ec95efd5).
pub const INCLUDE_KEY_MATERIAL_SYMMETRIC_ONLY: &str =
    "Input parameter includeKeyMaterial can only be used with symmetric keys.";

// ---------------------------------------------------------------------------------------------
// Signature Version 4 (`auth/sigv4.rs`): `IncompleteSignatureException` for a request whose
// signature cannot be read, `InvalidSignatureException` for one that does not verify. Recorded
// AWS texts where the comment says so (from AWS answers quoted in public issues and logs of
// services on the same front end); the rest keep AWS's sentence style, no recording found.

/// The signature does not verify (recorded: the first sentence of every AWS mismatch answer).
pub const SIG_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
/// Recorded (Route 53, API Gateway answers quoted in public issues).
pub fn sig_region_scope(region: &str) -> String {
    format!("Credential should be scoped to a valid region, not '{region}'.")
}
/// As AWS's verifier words it (scratchstack-aws-signature, modelled on AWS).
pub fn sig_service_scope(service: &str) -> String {
    format!("Credential should be scoped to correct service: '{service}'.")
}
/// As AWS's verifier words it (scratchstack-aws-signature; the IAM user guide has the start).
pub fn sig_scope_date(scope_date: &str, http_date: &str, amz_date: &str) -> String {
    format!(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '{scope_date}' != '{http_date}', from '{amz_date}'."
    )
}
/// Recorded (KMS answers quoted by credstash users; KMS allows 5 minutes of skew).
pub fn sig_expired(amz_date: &str, limit: &str, now: &str, window: &str) -> String {
    format!("Signature expired: {amz_date} is now earlier than {limit} ({now} - {window})")
}
/// Recorded for services on the same front end (aws/aws-sdk-go#2194).
pub fn sig_not_yet_current(amz_date: &str, limit: &str, now: &str, window: &str) -> String {
    format!("Signature not yet current: {amz_date} is still later than {limit} ({now} + {window})")
}
/// Recorded (AWS's parser names each missing parameter this way).
pub fn sig_requires_parameter(name: &str) -> String {
    format!("Authorization header requires '{name}' parameter.")
}
/// As AWS's verifier words it, for an `AWS4-` algorithm it does not know.
pub fn sig_unsupported_algorithm(supported: &str) -> String {
    format!("Unsupported AWS 'algorithm': only '{supported}' is accepted.")
}
pub fn sig_terminator(terminator: &str) -> String {
    format!("Credential should be scoped with a valid terminator: '{terminator}'.")
}
/// `'Host'`/`'X-Amz-Date'`/`'X-Amz-Security-Token'` not among the signed headers (AWS's
/// wording for Host; none found for the others).
pub fn sig_must_be_signed(header: &str) -> String {
    format!("'{header}' must be a 'SignedHeader' in the AWS Authorization.")
}
pub const SIG_DATE_REQUIRED: &str =
    "Authorization header requires existence of a 'X-Amz-Date' header.";
pub const SIG_DATE_FORMAT: &str =
    "X-Amz-Date must be in ISO-8601 basic format (yyyyMMdd'T'HHmmss'Z').";
/// S3's text for the same fault (none found for KMS).
pub const SIG_CONTENT_SHA256_MISMATCH: &str =
    "The provided 'x-amz-content-sha256' header does not match what was computed.";
// No AWS recording for the following faults of the header's syntax (AWS's parser reports
// them as missing parameters or as a mismatch); each names what is wrong.
pub const SIG_NON_ASCII: &str = "Authorization header contains non-ASCII characters.";
pub const SIG_PARAMETER_SYNTAX: &str =
    "Authorization header parameters must have the form key=value, separated by commas.";
pub const SIG_UNKNOWN_PARAMETER: &str = "Authorization header has an unknown parameter.";
pub fn sig_duplicate_parameter(name: &str) -> String {
    format!("Authorization header has a duplicate '{name}' parameter.")
}
pub const SIG_CREDENTIAL_FORM: &str =
    "Credential must have the form <AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request.";
pub const SIG_CREDENTIAL_COMPONENT: &str = "Credential has an empty or invalid component.";
pub const SIG_CREDENTIAL_DATE: &str = "Credential date must have the form yyyymmdd.";
pub const SIG_SIGNED_HEADERS_FORM: &str =
    "SignedHeaders must be a ';'-separated list of lowercase header names.";
pub const SIG_SIGNATURE_FORM: &str = "Signature must be 64 hexadecimal digits.";
pub fn sig_one_header(name: &str) -> String {
    format!("Only one '{name}' header is allowed.")
}
/// kms-bridge verifies only header signatures (a deviation from AWS).
pub const SIG_PRESIGNED_UNSUPPORTED: &str =
    "Presigned (query-string) requests are not supported; sign with the Authorization header.";

/// kms-bridge requires `X-Amz-Target` to be signed, so a signed request cannot be replayed as
/// another operation (a deviation: AWS does not require it; every AWS SDK signs it).
pub const SIG_TARGET_UNSIGNED: &str = "Signed headers must include x-amz-target";

// ---------------------------------------------------------------------------------------------
// The protocol (`api/`). Unknown operations and unreadable bodies are answered without a
// message, as AWS's front end does (their detail goes only to the log).

/// A body over the server's limit (HTTP 413 `ValidationException`; none found for KMS, whose
/// front end answers 413 as DynamoDB's does).
pub fn body_too_large(limit: usize) -> String {
    format!("The request body is larger than {limit} bytes")
}

#[cfg(test)]
mod tests {
    /// Error variants whose message never reaches the wire (the wire text is fixed in
    /// `api/error.rs`, or there is none; the message is a detail for the log).
    const LOG_ONLY: [&str; 6] = [
        "Internal",
        "KeyUnavailable",
        "DependencyTimeout",
        "Backend",
        "Serialization",
        "UnknownOperation",
    ];

    /// The error types whose messages reach the wire, and the SigV4 module's constructor.
    const ERROR_TYPES: [&str; 5] = [
        "KmsError::",
        "SigV4Error::",
        "AuthError::",
        "ProtocolError::",
        "incomplete",
    ];

    /// Every error construction outside this file whose message is built inline (a
    /// `format!` or a string literal), as `file:line: text`.
    fn inline_texts(file: &str, src: &str) -> Vec<String> {
        let mut found = Vec::new();
        for ty in ERROR_TYPES {
            found.extend(inline_texts_of(ty, file, src));
        }
        found
    }

    fn inline_texts_of(ty: &str, file: &str, src: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = src;
        while let Some(at) = rest.find(ty) {
            let after = &rest[at + ty.len()..];
            let name_len = after
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(after.len());
            let (variant, tail) = after.split_at(name_len);
            if let Some(arg) = tail.strip_prefix('(') {
                let arg = arg.trim_start();
                let inline = arg.starts_with("format!(")
                    || arg.starts_with('"')
                    || arg.starts_with("String::from(\"");
                if inline && !LOG_ONLY.contains(&variant) {
                    let line = src.len() - rest.len() + at;
                    let line = src[..line].matches('\n').count() + 1;
                    found.push(format!("{file}:{line}: {ty}{variant}"));
                }
            }
            rest = after;
        }
        found
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// AWS's texts live here only: an error built with an inline message anywhere else in the
    /// sources fails this test (add the text to this catalogue, with its source).
    #[test]
    fn no_error_text_is_built_outside_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        assert!(
            files.len() > 20,
            "the sources were not found under {root:?}"
        );
        let mut found = Vec::new();
        for f in files {
            if f.ends_with("src/texts.rs") {
                continue;
            }
            let src = std::fs::read_to_string(&f).expect("readable source");
            // Unit tests may spell out the texts they expect.
            let code = src.split("\n#[cfg(test)]\nmod tests").next().unwrap_or("");
            found.extend(inline_texts(&f.display().to_string(), code));
        }
        assert!(
            found.is_empty(),
            "error texts built outside src/texts.rs:\n{}",
            found.join("\n")
        );
    }

    /// The scanner itself finds what it must (a check that cannot fail is no check).
    #[test]
    fn the_scanner_finds_inline_texts() {
        let src = "let a = KmsError::NotFound(format!(\"x {y}\"));\n\
                   let b = KmsError::Validation(\n    \"literal\".into(),\n);\n\
                   let c = KmsError::Tag(texts::TOO_MANY_TAGS.into());\n\
                   let d = KmsError::Internal(format!(\"log only\"));\n\
                   let e = KmsError::InvalidMac(String::new());\n\
                   let f = incomplete(\"sigv4\");\n\
                   let g = AuthError::Incomplete(texts::SIG_TARGET_UNSIGNED.into());\n\
                   let h = ProtocolError::TooLarge(format!(\"{n}\"));\n";
        assert_eq!(
            inline_texts("f.rs", src),
            [
                "f.rs:1: KmsError::NotFound",
                "f.rs:2: KmsError::Validation",
                "f.rs:10: ProtocolError::TooLarge",
                "f.rs:8: incomplete",
            ]
        );
    }
}
