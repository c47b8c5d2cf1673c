//! The domain test tier: `kms::Kms` driven in-process — a real SoftHSM token, the real sealed
//! metadata store on a SQLite file on tmpfs, a clock the test moves — with no HTTP, SigV4 or
//! server process in between. It is for the KMS rules themselves (key states, aliases, grant
//! constraints, rotation bookkeeping, deletion windows, import tokens); each check takes
//! milliseconds. What a client sees on the wire (codes, statuses, messages through the SDK)
//! stays with the HTTP tests.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use kms_bridge::audit::AuditLog;
use kms_bridge::auth::Principal;
use kms_bridge::kms::blob::EncryptionContext;
use kms_bridge::kms::ids::{AliasName, KeyName, KeyRef};
use kms_bridge::kms::{
    Clock, CreateGrantInput, CreateKeyInput, GrantConstraints, ImportInput, Kms, KmsError,
    RequestContext,
};
use kms_bridge::model::{KeyState, RotationType, WrappingAlgorithm, WrappingKeySpec};
use kms_bridge::store::PrincipalKind;
use zeroize::Zeroizing;

const DAY_MS: i64 = 86_400_000;

/// The lifecycle clock, moved by the test.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One domain: the service over a fresh token and database, and the clock.
struct Domain {
    kms: Kms,
    clock: Arc<TestClock>,
    audit: AuditLog,
    // Last: the token's turn in this process ends after the service is gone.
    _token: InProcess<kms_bridge::token::Token>,
    _dir: TestDir,
}

impl Domain {
    async fn new() -> Domain {
        let dir = TestDir::new();
        std::fs::create_dir_all(dir.data_dir()).expect("data dir");
        let token = dir.open_token().await;
        let sealer = kms_bridge::kms::sealed::TokenSealer::open(token.inner.clone())
            .await
            .expect("row MAC key");
        let db = kms_bridge::store::sqlite::SqliteStore::open(&dir.data_dir().join("kms.db"))
            .await
            .expect("database");
        let store = kms_bridge::store::cached::CachedStore::new(db, std::time::Duration::ZERO)
            .with_sealer(Arc::new(sealer));
        let clock = Arc::new(TestClock(AtomicI64::new(
            kms_bridge::kms::SystemClock.now_millis(),
        )));
        let kms = Kms::new(
            token.inner.clone(),
            Arc::new(store),
            clock.clone(),
            Default::default(),
            token_module(),
        );
        let audit = AuditLog::open(dir.data_dir().join("audit"), 1 << 20, None).expect("audit");
        Domain {
            kms,
            clock,
            audit,
            _token: token,
            _dir: dir,
        }
    }

    fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    async fn run_jobs(&self) -> kms_bridge::kms::scheduler::SchedulerReport {
        self.kms.run_scheduled_jobs(&self.audit).await
    }

    /// A new symmetric key, as the account's root; its reference.
    async fn key(&self) -> KeyRef {
        let info = self
            .kms
            .create_key(&root(), CreateKeyInput::default())
            .await
            .expect("CreateKey");
        KeyRef::Id(KeyName::Uuid(info.record.key_id))
    }

    async fn state(&self, key: &KeyRef) -> KeyState {
        self.kms
            .describe_key(&root(), key)
            .await
            .expect("DescribeKey")
            .state
    }

    async fn encrypt(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        ec: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.kms
            .encrypt(ctx, key, Zeroizing::new(b"domain".to_vec()), ec, None)
            .await
            .map(|e| e.ciphertext_blob)
    }
}

fn context(arn: &str, kind: PrincipalKind, name: &str) -> RequestContext {
    RequestContext {
        region: REGION.into(),
        account: ACCOUNT.into(),
        access_key_id: "AKIADOMAINTEST".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        principal: Principal {
            arn: arn.into(),
            account: ACCOUNT.into(),
            kind,
            name: name.into(),
        },
        identity_policies: Arc::new(Vec::new()),
        source_ip: None,
        secure_transport: true,
        request: Default::default(),
    }
}

/// The account's root: the default key policy allows it everything.
fn root() -> RequestContext {
    context(
        &format!("arn:aws:iam::{ACCOUNT}:root"),
        PrincipalKind::Root,
        "root",
    )
}

/// A user with no identity policies: only grants can let it use a key.
fn bob() -> RequestContext {
    context(
        &format!("arn:aws:iam::{ACCOUNT}:user/bob"),
        PrincipalKind::User,
        "bob",
    )
}

fn no_context() -> EncryptionContext {
    EncryptionContext::new()
}

macro_rules! assert_err {
    ($res:expr, $pat:pat) => {{
        match $res {
            Err($pat) => {}
            other => panic!("expected {} but got {other:?}", stringify!($pat)),
        }
    }};
}

/// AWS's key state table for the cryptographic and lifecycle operations: Enabled works,
/// Disabled answers DisabledException, PendingDeletion KMSInvalidStateException; a cancelled
/// deletion leaves the key Disabled.
#[tokio::test]
async fn key_state_table() {
    let d = Domain::new().await;
    let k = d.key().await;
    let blob = d
        .encrypt(&root(), &k, &no_context())
        .await
        .expect("Encrypt while Enabled");

    d.kms.disable_key(&root(), &k).await.unwrap();
    assert_eq!(d.state(&k).await, KeyState::Disabled);
    assert_err!(
        d.encrypt(&root(), &k, &no_context()).await,
        KmsError::Disabled(_)
    );
    assert_err!(
        d.kms
            .decrypt(&root(), &blob, None, &no_context(), None)
            .await
            .map(|_| ()),
        KmsError::Disabled(_)
    );
    assert_err!(
        d.kms.rotate_key_on_demand(&root(), &k).await,
        KmsError::Disabled(_)
    );

    d.kms
        .schedule_key_deletion(&root(), &k, Some(7))
        .await
        .unwrap();
    assert_eq!(d.state(&k).await, KeyState::PendingDeletion);
    assert_err!(
        d.encrypt(&root(), &k, &no_context()).await,
        KmsError::InvalidState(_)
    );
    assert_err!(
        d.kms.enable_key(&root(), &k).await,
        KmsError::InvalidState(_)
    );
    assert_err!(
        d.kms.schedule_key_deletion(&root(), &k, Some(7)).await,
        KmsError::InvalidState(_)
    );

    d.kms.cancel_key_deletion(&root(), &k).await.unwrap();
    assert_eq!(
        d.state(&k).await,
        KeyState::Disabled,
        "a cancelled deletion leaves it disabled"
    );
    assert_err!(
        d.kms.cancel_key_deletion(&root(), &k).await,
        KmsError::InvalidState(_)
    );
    d.kms.enable_key(&root(), &k).await.unwrap();
    let pt = d
        .kms
        .decrypt(&root(), &blob, None, &no_context(), None)
        .await
        .unwrap();
    assert_eq!(pt.plaintext.as_slice(), b"domain");
}

/// Deletion is never early and can be cancelled up to the last moment; the window is 7–30
/// days; a deleted key, its aliases and its grants are gone.
#[tokio::test]
async fn deletion_windows() {
    let d = Domain::new().await;
    let k = d.key().await;
    for days in [6, 31] {
        assert_err!(
            d.kms.schedule_key_deletion(&root(), &k, Some(days)).await,
            KmsError::Validation(_)
        );
    }
    let alias = AliasName::parse("alias/doomed").unwrap();
    d.kms.create_alias(&root(), &alias, &k).await.unwrap();
    let scheduled = d
        .kms
        .schedule_key_deletion(&root(), &k, None)
        .await
        .unwrap();
    assert_eq!(scheduled.pending_window_days, 30, "the default window");
    assert_eq!(
        scheduled.deletion_date,
        Some(d.clock.now_millis() + 30 * DAY_MS)
    );

    // A millisecond early: nothing happens; cancelled then, the key stays.
    d.advance(30 * DAY_MS - 1);
    assert_eq!(d.run_jobs().await.deleted, 0);
    d.kms.cancel_key_deletion(&root(), &k).await.unwrap();
    d.advance(DAY_MS);
    assert_eq!(d.run_jobs().await.deleted, 0);
    assert_eq!(d.state(&k).await, KeyState::Disabled);

    // Scheduled again, at its date it goes: key, alias, material.
    d.kms
        .schedule_key_deletion(&root(), &k, Some(7))
        .await
        .unwrap();
    d.advance(7 * DAY_MS);
    let report = d.run_jobs().await;
    assert_eq!(
        (report.deleted, report.destroyed_objects, report.errors),
        (1, 1, 0)
    );
    assert_err!(d.kms.describe_key(&root(), &k).await, KmsError::NotFound(_));
    assert_err!(
        d.kms.describe_key(&root(), &KeyRef::Alias(alias)).await,
        KmsError::NotFound(_)
    );
    assert_eq!(d.run_jobs().await, Default::default(), "nothing left to do");
}

/// Aliases: unique per account and region, `alias/aws/` reserved (NotAuthorizedException, as AWS), not onto a key pending
/// deletion; UpdateAlias moves one, DeleteAlias removes it.
#[tokio::test]
async fn alias_rules() {
    let d = Domain::new().await;
    let (a, b) = (d.key().await, d.key().await);
    let name = AliasName::parse("alias/app").unwrap();
    d.kms.create_alias(&root(), &name, &a).await.unwrap();
    assert_err!(
        d.kms.create_alias(&root(), &name, &b).await,
        KmsError::AlreadyExists(_)
    );
    assert_err!(
        d.kms
            .create_alias(&root(), &AliasName::parse("alias/aws/x").unwrap(), &a)
            .await,
        // As AWS answers a user's alias/aws/ name (tests/managed.rs).
        KmsError::NotAuthorized(_)
    );
    d.kms
        .schedule_key_deletion(&root(), &b, Some(7))
        .await
        .unwrap();
    assert_err!(
        d.kms
            .create_alias(&root(), &AliasName::parse("alias/late").unwrap(), &b)
            .await,
        KmsError::InvalidState(_)
    );
    d.kms.cancel_key_deletion(&root(), &b).await.unwrap();
    d.kms.update_alias(&root(), &name, &b).await.unwrap();
    let via_alias = d
        .kms
        .describe_key(&root(), &KeyRef::Alias(name.clone()))
        .await
        .unwrap();
    assert_eq!(KeyRef::Id(KeyName::Uuid(via_alias.record.key_id)), b);
    d.kms.delete_alias(&root(), &name).await.unwrap();
    assert_err!(
        d.kms.describe_key(&root(), &KeyRef::Alias(name)).await,
        KmsError::NotFound(_)
    );
}

/// A grant allows exactly its operations, under its encryption-context constraint; retired,
/// it allows nothing.
#[tokio::test]
async fn grant_constraints() {
    let d = Domain::new().await;
    let k = d.key().await;
    let app = |v: &str| -> EncryptionContext { [("app".to_owned(), v.to_owned())].into() };
    assert_err!(
        d.encrypt(&bob(), &k, &app("x")).await,
        KmsError::AccessDenied(_)
    );
    let (grant_id, token) = d
        .kms
        .create_grant(
            &root(),
            CreateGrantInput {
                key: k.clone(),
                grantee_principal: bob().principal.arn,
                retiring_principal: None,
                operations: vec!["Encrypt".into()],
                constraints: Some(GrantConstraints {
                    subset: None,
                    equals: Some(BTreeMap::from([("app".to_owned(), "x".to_owned())])),
                }),
                name: None,
            },
        )
        .await
        .unwrap();
    let blob = d.encrypt(&bob(), &k, &app("x")).await.expect("granted");
    assert_err!(
        d.encrypt(&bob(), &k, &app("y")).await,
        KmsError::AccessDenied(_)
    );
    assert_err!(
        d.encrypt(&bob(), &k, &no_context()).await,
        KmsError::AccessDenied(_)
    );
    assert_err!(
        d.kms
            .decrypt(&bob(), &blob, None, &app("x"), None)
            .await
            .map(|_| ()),
        KmsError::AccessDenied(_)
    );
    d.kms
        .retire_grant(&root(), Some(&token), None, None)
        .await
        .or(d.kms.revoke_grant(&root(), &k, &grant_id).await)
        .unwrap();
    assert_err!(
        d.encrypt(&bob(), &k, &app("x")).await,
        KmsError::AccessDenied(_)
    );
}

/// Automatic rotation runs when its period has passed, once; rotation on demand adds a
/// version without moving the automatic schedule; old ciphertexts keep decrypting.
#[tokio::test]
async fn rotation_bookkeeping() {
    let d = Domain::new().await;
    let k = d.key().await;
    let old = d.encrypt(&root(), &k, &no_context()).await.unwrap();
    d.kms
        .enable_key_rotation(&root(), &k, Some(90))
        .await
        .unwrap();
    let status = d.kms.get_key_rotation_status(&root(), &k).await.unwrap();
    let next = status.next_rotation.expect("next rotation");
    assert_eq!(next, d.clock.now_millis() + 90 * DAY_MS);

    d.kms.rotate_key_on_demand(&root(), &k).await.unwrap();
    let status = d.kms.get_key_rotation_status(&root(), &k).await.unwrap();
    assert_eq!(
        status.next_rotation,
        Some(next),
        "on demand does not move the schedule"
    );

    d.advance(90 * DAY_MS - 1);
    assert_eq!(d.run_jobs().await.rotated, 0, "not yet");
    d.advance(1);
    assert_eq!(d.run_jobs().await.rotated, 1);
    assert_eq!(d.run_jobs().await.rotated, 0, "once per period");
    let status = d.kms.get_key_rotation_status(&root(), &k).await.unwrap();
    assert_eq!(
        status.next_rotation,
        Some(d.clock.now_millis() + 90 * DAY_MS)
    );

    let rotations = d
        .kms
        .list_key_rotations(&root(), &k, false, None, None)
        .await
        .unwrap();
    let kinds: Vec<_> = rotations.items.iter().map(|r| r.rotation_type).collect();
    assert_eq!(
        kinds,
        [Some(RotationType::OnDemand), Some(RotationType::Automatic)]
    );
    assert_eq!(
        rotations.items.last().unwrap().state,
        kms_bridge::model::KeyMaterialState::Current
    );
    let blob = d.encrypt(&root(), &k, &no_context()).await.unwrap();
    assert_eq!(u32::from_be_bytes(blob[20..24].try_into().unwrap()), 3);
    let pt = d
        .kms
        .decrypt(&root(), &old, None, &no_context(), None)
        .await
        .unwrap();
    assert_eq!(pt.plaintext.as_slice(), b"domain");
}

/// Import tokens are fuzzed here, where the token's MAC key is: any change to a valid token
/// (a flipped bit, a cut, an extension, another key's token) is `InvalidImportTokenException`
/// — never accepted, never another answer.
#[test]
fn changed_import_tokens_are_refused() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (d, key, token, other) = rt.block_on(async {
        let d = Domain::new().await;
        let external = || CreateKeyInput {
            origin: Some(kms_bridge::model::Origin::External),
            ..Default::default()
        };
        let mut keys = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let k = KeyRef::Id(KeyName::Uuid(
                d.kms
                    .create_key(&root(), external())
                    .await
                    .unwrap()
                    .record
                    .key_id,
            ));
            let p = d
                .kms
                .get_parameters_for_import(
                    &root(),
                    &k,
                    WrappingAlgorithm::RsaesOaepSha1,
                    WrappingKeySpec::Rsa2048,
                )
                .await
                .unwrap();
            keys.push(k);
            tokens.push(p.import_token);
        }
        (d, keys.remove(0), tokens.remove(0), tokens.remove(0))
    });
    let changed = prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map({
            let t = token.clone();
            move |(i, bit)| {
                let mut t = t.clone();
                let at = i.index(t.len());
                t[at] ^= 1 << bit;
                t
            }
        }),
        (0..token.len()).prop_map({
            let t = token.clone();
            move |n| t[..n].to_vec()
        }),
        any::<u8>().prop_map({
            let t = token.clone();
            move |b| [t.clone(), vec![b]].concat()
        }),
        Just(other),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&changed, |t| {
            let result = rt.block_on(d.kms.import_key_material(
                &root(),
                &key,
                ImportInput {
                    import_token: t,
                    encrypted_key_material: vec![0; 256],
                    expiration_model: Some(
                        kms_bridge::model::ExpirationModel::KeyMaterialDoesNotExpire,
                    ),
                    valid_to: None,
                    import_type: None,
                    description: None,
                    key_material_id: None,
                },
            ));
            prop_assert!(
                matches!(result, Err(KmsError::InvalidImportToken(_))),
                "{result:?}"
            );
            Ok(())
        })
        .unwrap();
    // The unchanged token passes the token check (the material then fails to unwrap).
    let result = rt.block_on(d.kms.import_key_material(
        &root(),
        &key,
        ImportInput {
            import_token: token,
            encrypted_key_material: vec![0; 256],
            expiration_model: Some(kms_bridge::model::ExpirationModel::KeyMaterialDoesNotExpire),
            valid_to: None,
            import_type: None,
            description: None,
            key_material_id: None,
        },
    ));
    assert_err!(result, KmsError::InvalidCiphertext(_));
    drop(d);
}
