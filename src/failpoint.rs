//! Test hooks: crash failpoints and the wiping switch. Compiled in only with the `test-hooks`
//! feature, which only test builds have (`Cargo.toml`); in every other build `hit` is an empty
//! inline function and `wiping` is always true.
//!
//! A failpoint names one step of a change that spans the store and the token (or several store
//! writes). `KMS_BRIDGE_FAILPOINT=<name>` makes the process abort the first time it reaches that
//! step; `<name>@<n>` the n-th time. `std::process::abort()` runs no destructor and flushes
//! nothing: the state left behind is exactly what a `kill -9` (or a power cut after the last
//! fsync) leaves at that step. `tests/crash.rs` runs the server once per failpoint and checks
//! what a restart makes of it; it also checks that it covers every name in [`ALL`].

/// Every failpoint, in the order of the steps they interrupt.
pub const ALL: &[&str] = &[
    // CreateKey: intent row (key `Creating`, version pending) → token object → activation.
    "create_key.after_intent",
    "create_key.after_material",
    // Rotation (on demand and scheduled share `Kms::rotate`): pending version → object →
    // activation.
    "rotate.after_intent",
    "rotate.after_material",
    // GetParametersForImport: wrapping key pair in the token → parameters stored → the
    // superseded wrapping key destroyed.
    "import_parameters.after_wrapping_key",
    "import_parameters.after_store",
    // ImportKeyMaterial: pending version → unwrapped object → check value stored → activation.
    "import.after_intent",
    "import.after_unwrap",
    "import.after_check_value",
    // DeleteImportedKeyMaterial: key → PendingImport, then per version: object destroyed →
    // version row removed.
    "delete_material.after_state",
    "delete_material.after_destroy",
    // Scheduled deletion: key tombstoned → wrapping key destroyed → per version: object
    // destroyed → version row removed.
    "deletion.after_tombstone",
    "deletion.after_destroy",
    // CreateGrant: the grant row is the whole change.
    "create_grant.before_insert",
    "create_grant.after_insert",
    // DeleteCustomKeyStore: the store row goes (its sealed PIN with it).
    "delete_key_store.before_delete",
    "delete_key_store.after_delete",
];

/// Abort the process here if `KMS_BRIDGE_FAILPOINT` names this step (test builds only).
#[cfg(feature = "test-hooks")]
pub fn hit(name: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);
    debug_assert!(
        ALL.contains(&name),
        "failpoint {name} is not in failpoint::ALL"
    );
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("KMS_BRIDGE_FAILPOINT").ok()?;
        match spec.split_once('@') {
            Some((n, count)) => Some((n.to_owned(), count.parse().ok()?)),
            None => Some((spec, 1)),
        }
    });
    if let Some((armed, count)) = armed {
        if armed == name && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == *count {
            eprintln!("failpoint {name}: aborting the process");
            std::process::abort();
        }
    }
}

/// Abort the process here if `KMS_BRIDGE_FAILPOINT` names this step (test builds only).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}

/// Whether answers with secrets are wiped after they are written: always, except in a test
/// build started with `KMS_BRIDGE_TEST_NO_WIPE=1` (`tests/zeroization.rs` shows that its memory
/// scan then finds the secrets, i.e. that it can fail).
#[cfg(feature = "test-hooks")]
pub fn wiping() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    !*OFF.get_or_init(|| std::env::var_os("KMS_BRIDGE_TEST_NO_WIPE").is_some_and(|v| v == "1"))
}

/// Whether answers with secrets are wiped after they are written: always, in this build.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn wiping() -> bool {
    true
}
