//! The one table of operations: every KMS operation this server answers, with everything the
//! layers decide by operation — derived from here, written nowhere else.
//!
//! | column | read by |
//! |---|---|
//! | the operation (`X-Amz-Target` name) | `api` (parsing the target, dispatch, the model check) |
//! | its group | `api::ops` (the module of its request and response types) |
//! | its IAM actions (ReEncrypt: `ReEncryptTo`, then `ReEncryptFrom`) | `kms::authz` (every authorization names an [`Action`]), `policy` (the known actions) |
//! | its quota | `kms::authz` (charged once per request) |
//! | `state`: it changes state (an intent record is audited before it runs) | `api` |
//! | `dry_run`: it takes `DryRun` | `api` (reads the member), `kms::authz` (stops after the operation's last action) |
//! | `alias`: its `KeyId` may be an alias name or alias ARN | `kms::authz` |
//! | `other_account`: its `KeyId` may be another account's key ARN | `kms::authz` |
//! | `grant`: a grant can allow its actions (`GrantOperation`) | `kms::authz`, `kms::grants` |
//! | `tracked`: GetKeyLastUsage reports it (`KeyLastUsageTrackingOperation`) | `kms::usage` |
//! | `read_only`: CloudTrail's `readOnly` | `api` (the audit record) |
//! | `secret`: its answer carries a secret (typed, written into a zeroizing body) | `api` |
//!
//! Adding an operation is one row here and its handler in `api::ops` (whose dispatch is an
//! exhaustive `match` on [`Operation`], so a row without a handler does not compile); the tests
//! below check the rows against the service model (`../shared/reference/kms/service-2.json`).

/// Where an operation's requests count (AWS's request quota groups; see `kms::quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Cryptographic operations: the group follows the key's spec (symmetric, RSA, ECC).
    Crypto,
    /// GenerateDataKeyPair*: the group follows the pair's spec.
    DataKeyPair,
    CreateKey,
    GenerateRandom,
    /// Every other operation.
    Management,
}

/// The operation groups: one module of typed requests and responses each in `api::ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Keys,
    Aliases,
    Crypto,
    Asymmetric,
    Grants,
    Rotation,
    Import,
    KeyStores,
    MultiRegion,
}

/// The yes/no columns of a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub state: bool,
    pub dry_run: bool,
    pub alias: bool,
    pub other_account: bool,
    pub grant: bool,
    pub tracked: bool,
    pub read_only: bool,
    pub secret: bool,
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    pub operation: Operation,
    pub group: Group,
    /// The IAM actions the operation is authorized for, in the order it authorizes them.
    pub actions: &'static [Action],
    pub quota: Quota,
    pub flags: Flags,
}

macro_rules! flags {
    ($($flag:ident)*) => {{
        #[allow(unused_mut)]
        let mut f = Flags {
            state: false,
            dry_run: false,
            alias: false,
            other_account: false,
            grant: false,
            tracked: false,
            read_only: false,
            secret: false,
        };
        $(f.$flag = true;)*
        f
    }};
}

macro_rules! table {
    ($(
        $op:ident : $group:ident [$($action:ident),+] $quota:ident { $($flag:ident)* }
    )+) => {
        /// Every operation this server answers, parsed once from `X-Amz-Target`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $($op),+ }

        /// Every IAM action of a KMS operation (`kms:<name>`): one per operation, ReEncrypt's
        /// two in its place.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $($($action),+),+ }

        /// The table, one row per operation.
        pub const TABLE: &[Row] = &[$(Row {
            operation: Operation::$op,
            group: Group::$group,
            actions: &[$(Action::$action),+],
            quota: Quota::$quota,
            flags: flags!($($flag)*),
        }),+];

        /// Every action's IAM name, in table order.
        pub const IAM_ACTIONS: &[&str] = &[$($(concat!("kms:", stringify!($action))),+),+];

        impl Operation {
            /// Every operation, in table order.
            pub const ALL: &'static [Operation] = &[$(Operation::$op),+];

            pub fn name(self) -> &'static str {
                match self { $(Operation::$op => stringify!($op)),+ }
            }

            pub fn from_name(name: &str) -> Option<Operation> {
                match name {
                    $(stringify!($op) => Some(Operation::$op),)+
                    _ => None,
                }
            }
        }

        impl Action {
            /// Every action, in table order.
            pub const ALL: &'static [Action] = &[$($(Action::$action),+),+];

            /// The operation name (`ReEncryptFrom`), as grants and AWS's texts name it.
            pub fn name(self) -> &'static str {
                match self { $($(Action::$action => stringify!($action)),+),+ }
            }

            /// The IAM action (`kms:ReEncryptFrom`), as policies name it.
            pub fn iam(self) -> &'static str {
                match self { $($(Action::$action => concat!("kms:", stringify!($action))),+),+ }
            }

            /// The operation this action authorizes.
            pub fn operation(self) -> Operation {
                match self { $($(Action::$action => Operation::$op),+),+ }
            }
        }
    };
}

// operation                 group        actions                          quota         flags
table! {
    CreateKey:                Keys        [CreateKey]                      CreateKey     { state }
    DescribeKey:              Keys        [DescribeKey]                    Management    { alias other_account grant read_only }
    ListKeys:                 Keys        [ListKeys]                       Management    { read_only }
    EnableKey:                Keys        [EnableKey]                      Management    { state }
    DisableKey:               Keys        [DisableKey]                     Management    { state }
    ScheduleKeyDeletion:      Keys        [ScheduleKeyDeletion]            Management    { state }
    CancelKeyDeletion:        Keys        [CancelKeyDeletion]              Management    { state }
    UpdateKeyDescription:     Keys        [UpdateKeyDescription]           Management    { state }
    CreateAlias:              Aliases     [CreateAlias]                    Management    { state }
    UpdateAlias:              Aliases     [UpdateAlias]                    Management    { state }
    DeleteAlias:              Aliases     [DeleteAlias]                    Management    { state }
    ListAliases:              Aliases     [ListAliases]                    Management    { read_only }
    TagResource:              Keys        [TagResource]                    Management    { state }
    UntagResource:            Keys        [UntagResource]                  Management    { state }
    ListResourceTags:         Keys        [ListResourceTags]               Management    { read_only }
    GetKeyPolicy:             Keys        [GetKeyPolicy]                   Management    { read_only }
    PutKeyPolicy:             Keys        [PutKeyPolicy]                   Management    { state }
    ListKeyPolicies:          Keys        [ListKeyPolicies]                Management    { read_only }
    Encrypt:                  Crypto      [Encrypt]                        Crypto        { dry_run alias other_account grant tracked }
    Decrypt:                  Crypto      [Decrypt]                        Crypto        { dry_run alias other_account grant tracked secret }
    ReEncrypt:                Crypto      [ReEncryptTo, ReEncryptFrom]     Crypto        { dry_run alias other_account grant tracked }
    GenerateDataKey:          Crypto      [GenerateDataKey]                Crypto        { dry_run alias other_account grant tracked secret }
    GenerateDataKeyWithoutPlaintext: Crypto [GenerateDataKeyWithoutPlaintext] Crypto     { dry_run alias other_account grant tracked }
    GenerateRandom:           Crypto      [GenerateRandom]                 GenerateRandom { secret }
    EnableKeyRotation:        Rotation    [EnableKeyRotation]              Management    { state }
    DisableKeyRotation:       Rotation    [DisableKeyRotation]             Management    { state }
    GetKeyRotationStatus:     Rotation    [GetKeyRotationStatus]           Management    { other_account read_only }
    RotateKeyOnDemand:        Rotation    [RotateKeyOnDemand]              Management    { state }
    ListKeyRotations:         Rotation    [ListKeyRotations]               Management    { read_only }
    CreateGrant:              Grants      [CreateGrant]                    Management    { state dry_run other_account grant }
    ListGrants:               Grants      [ListGrants]                     Management    { other_account read_only }
    ListRetirableGrants:      Grants      [ListRetirableGrants]            Management    { read_only }
    RetireGrant:              Grants      [RetireGrant]                    Management    { state dry_run other_account grant }
    RevokeGrant:              Grants      [RevokeGrant]                    Management    { state dry_run other_account }
    CreateCustomKeyStore:     KeyStores   [CreateCustomKeyStore]           Management    { state }
    DescribeCustomKeyStores:  KeyStores   [DescribeCustomKeyStores]        Management    { read_only }
    ConnectCustomKeyStore:    KeyStores   [ConnectCustomKeyStore]          Management    { state }
    DisconnectCustomKeyStore: KeyStores   [DisconnectCustomKeyStore]       Management    { state }
    UpdateCustomKeyStore:     KeyStores   [UpdateCustomKeyStore]           Management    { state }
    DeleteCustomKeyStore:     KeyStores   [DeleteCustomKeyStore]           Management    { state }
    Sign:                     Asymmetric  [Sign]                           Crypto        { dry_run alias other_account grant tracked }
    Verify:                   Asymmetric  [Verify]                         Crypto        { dry_run alias other_account grant tracked }
    GetPublicKey:             Asymmetric  [GetPublicKey]                   Management    { alias other_account grant read_only }
    GenerateMac:              Asymmetric  [GenerateMac]                    Crypto        { dry_run alias other_account grant tracked }
    DeriveSharedSecret:       Asymmetric  [DeriveSharedSecret]             Crypto        { dry_run alias other_account grant tracked secret }
    GetKeyLastUsage:          Keys        [GetKeyLastUsage]                Management    { read_only }
    VerifyMac:                Asymmetric  [VerifyMac]                      Crypto        { dry_run alias other_account grant tracked }
    GenerateDataKeyPair:      Asymmetric  [GenerateDataKeyPair]            DataKeyPair   { dry_run alias other_account grant tracked secret }
    GenerateDataKeyPairWithoutPlaintext: Asymmetric [GenerateDataKeyPairWithoutPlaintext] DataKeyPair { dry_run alias other_account grant tracked }
    GetParametersForImport:   Import      [GetParametersForImport]         Management    { state read_only }
    ImportKeyMaterial:        Import      [ImportKeyMaterial]              Management    { state }
    DeleteImportedKeyMaterial: Import     [DeleteImportedKeyMaterial]      Management    { state }
    Encapsulate:              Asymmetric  [Encapsulate]                    Crypto        { dry_run alias other_account grant tracked secret }
    Decapsulate:              Asymmetric  [Decapsulate]                    Crypto        { dry_run alias other_account grant tracked secret }
    ReplicateKey:             MultiRegion [ReplicateKey]                   Management    { state }
    UpdatePrimaryRegion:      MultiRegion [UpdatePrimaryRegion]            Management    { state }
}

impl Operation {
    /// Its row of the table.
    pub fn row(self) -> &'static Row {
        // The table lists the operations in the enum's order (the macro makes both).
        &TABLE[self as usize]
    }

    pub fn from_target(target: &str) -> Option<Operation> {
        Operation::from_name(target.strip_prefix("TrentService.")?)
    }

    pub fn flags(self) -> Flags {
        self.row().flags
    }

    /// Operations that change keys, aliases, tags, policies, grants or key stores: their
    /// intent is audited before they run.
    pub fn changes_state(self) -> bool {
        self.flags().state
    }
}

impl Action {
    pub fn row(self) -> &'static Row {
        self.operation().row()
    }

    pub fn flags(self) -> Flags {
        self.row().flags
    }

    /// An action a grant can allow, by its grant operation name (`ReEncryptFrom`).
    pub fn from_grant_operation(name: &str) -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.flags().grant && a.name() == name)
    }

    /// The last authorization of its operation: where a dry run stops (ReEncrypt authorizes
    /// its destination, `ReEncryptTo`, first and its source, `ReEncryptFrom`, last).
    pub fn ends_authorization(self) -> bool {
        self.row().actions.last() == Some(&self)
    }
}

/// The operations a grant can allow (`GrantOperation`), in table order.
pub fn grant_operations() -> impl Iterator<Item = &'static str> {
    Action::ALL
        .iter()
        .filter(|a| a.flags().grant)
        .map(|a| a.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn model() -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/reference/kms/service-2.json");
        let text = std::fs::read_to_string(path).expect("the service model");
        serde_json::from_str(&text).expect("service model JSON")
    }

    fn enum_of(m: &serde_json::Value, shape: &str) -> BTreeSet<String> {
        m["shapes"][shape]["enum"]
            .as_array()
            .expect("an enum shape")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn rows_are_in_enum_order_and_unique() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.operation as usize, i, "{:?}", row.operation);
            assert_eq!(
                Operation::from_name(row.operation.name()),
                Some(row.operation)
            );
        }
        let actions: BTreeSet<_> = IAM_ACTIONS.iter().collect();
        assert_eq!(actions.len(), IAM_ACTIONS.len(), "an action in two rows");
        for a in Action::ALL {
            assert!(a.row().actions.contains(a));
            assert_eq!(a.iam(), format!("kms:{}", a.name()));
        }
    }

    #[test]
    fn every_model_operation_has_a_row_and_no_row_is_not_in_the_model() {
        let m = model();
        let modelled: BTreeSet<String> = m["operations"]
            .as_object()
            .expect("operations")
            .keys()
            .cloned()
            .collect();
        let ours: BTreeSet<String> = Operation::ALL.iter().map(|o| o.name().into()).collect();
        assert_eq!(ours, modelled);
    }

    /// The members of an operation's `input` or `output` shape.
    fn members<'m>(m: &'m serde_json::Value, op: Operation, dir: &str) -> &'m serde_json::Value {
        let shape = m["operations"][op.name()][dir]["shape"]
            .as_str()
            .unwrap_or_default();
        &m["shapes"][shape]["members"]
    }

    #[test]
    fn dry_run_column_is_the_models_dry_run_member() {
        let m = model();
        for op in Operation::ALL {
            let has = members(&m, *op, "input").get("DryRun").is_some();
            assert_eq!(op.flags().dry_run, has, "{}", op.name());
        }
    }

    #[test]
    fn grantable_actions_are_the_models_grant_operations() {
        let ours: BTreeSet<String> = grant_operations().map(String::from).collect();
        assert_eq!(ours, enum_of(&model(), "GrantOperation"));
        for name in &ours {
            assert!(Action::from_grant_operation(name).is_some());
        }
        assert_eq!(Action::from_grant_operation("ReEncrypt"), None);
    }

    #[test]
    fn tracked_operations_are_the_models_usage_tracking_operations() {
        let ours: BTreeSet<String> = Operation::ALL
            .iter()
            .filter(|o| o.flags().tracked)
            .map(|o| o.name().into())
            .collect();
        assert_eq!(ours, enum_of(&model(), "KeyLastUsageTrackingOperation"));
    }

    #[test]
    fn secret_column_is_the_models_sensitive_answers() {
        let m = model();
        for op in Operation::ALL {
            let sensitive: Vec<&String> = members(&m, *op, "output")
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| {
                    let shape = v["shape"].as_str().unwrap_or_default();
                    m["shapes"][shape]["sensitive"] == true
                })
                .map(|(k, _)| k)
                .collect();
            // The model marks GetParametersForImport's wrapping public key sensitive (it is a
            // PlaintextType); it is a public key, answered as such.
            let secret = !sensitive.is_empty() && op.name() != "GetParametersForImport";
            assert_eq!(op.flags().secret, secret, "{}: {sensitive:?}", op.name());
        }
    }

    #[test]
    fn columns_agree_with_each_other() {
        for row in TABLE {
            let f = row.flags;
            let name = row.operation.name();
            // A key named by an alias is a use of the key: only operations that use keys.
            if f.alias {
                assert!(f.other_account, "{name}: alias implies cross-account use");
            }
            // Only crypto-quota operations are tracked uses of a key.
            assert_eq!(
                f.tracked,
                matches!(row.quota, Quota::Crypto | Quota::DataKeyPair),
                "{name}"
            );
            // CloudTrail's readOnly: the Describe/List/Get operations.
            let reads = ["Describe", "List", "Get"]
                .iter()
                .any(|p| name.starts_with(p));
            assert_eq!(f.read_only, reads, "{name}");
            assert_eq!(row.actions.len(), 1 + usize::from(name == "ReEncrypt"));
        }
        assert_eq!(IAM_ACTIONS.len(), TABLE.len() + 1);
        assert!(Action::ReEncryptFrom.ends_authorization());
        assert!(!Action::ReEncryptTo.ends_authorization());
        assert_eq!(
            Operation::from_target("TrentService.Encrypt"),
            Some(Operation::Encrypt)
        );
        assert_eq!(Operation::from_target("Encrypt"), None);
    }
}
