//! The metadata store's contract, one suite for every engine: each check below runs against
//! SQLite (a file on tmpfs) and against PostgreSQL (a real server this test binary starts).
//! "Two writers" are two independent store handles on the same database — two pools, and for
//! PostgreSQL two listeners: what two nodes are.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kms_bridge::model::{KeySpec, KeyState, KeyUsage, Origin, RotationType};
use kms_bridge::store::postgres::{PgOptions, PgStore};
use kms_bridge::store::sqlite::SqliteStore;
use kms_bridge::store::{
    AccessKeyRecord, AliasRecord, CustomKeyStoreRecord, GrantRecord, IdentityPolicyRecord,
    ImportRecord, Invalidation, KeyRecord, MaterialRecord, MetadataStore, MultiRegion,
    PrincipalKind, PrincipalRecord, StoreError, TagRecord, VersionRecord,
};
use uuid::Uuid;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "111122223333";

/// A database and a way to open handles on it.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    fn new_sqlite() -> Db {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Db::Sqlite(base.join(format!("kms-bridge-conf-{}.db", Uuid::new_v4().simple())))
    }

    fn new_postgres() -> Db {
        Db::Postgres(common::pg::shared().create_database())
    }

    async fn open(&self) -> Arc<dyn MetadataStore> {
        match self {
            Db::Sqlite(p) => Arc::new(SqliteStore::open(p).await.expect("sqlite opens")),
            Db::Postgres(url) => Arc::new(PgStore::open(&pg_options(url)).await.expect("pg opens")),
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Sqlite(p) = self {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
    }
}

fn pg_options(url: &str) -> PgOptions {
    PgOptions {
        url: url.to_string(),
        pool_size: 8,
        statement_timeout: Duration::from_secs(10),
        acquire_timeout: Duration::from_secs(10),
        connect_retries: 3,
    }
}

fn key(state: KeyState) -> (KeyRecord, VersionRecord) {
    let id = Uuid::new_v4();
    let k = KeyRecord {
        key_id: id,
        region: REGION.into(),
        account: ACCOUNT.into(),
        description: "d".into(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state,
        created_at: 1,
        deletion_date: None,
        pending_window_days: None,
        rotation_enabled: false,
        rotation_period_days: None,
        rotation_base: None,
        current_version: 1,
        policy: "{}".into(),
        revision: 0,
        custom_key_store_id: None,
        key_manager: kms_bridge::model::KeyManager::Customer,
        mac: Vec::new(),
        multi_region: None,
    };
    let v = VersionRecord {
        key_id: id,
        version: 1,
        token_object_id: id.as_bytes().to_vec(),
        material_id: id.to_string(),
        created_at: 1,
        rotation_type: None,
        pending: false,
    };
    (k, v)
}

async fn new_key(s: &dyn MetadataStore, state: KeyState) -> KeyRecord {
    let (k, v) = key(state);
    s.insert_key(&k, &v, &[]).await.expect("insert key");
    k
}

fn alias(key_id: Uuid, name: &str) -> AliasRecord {
    AliasRecord {
        region: REGION.into(),
        account: ACCOUNT.into(),
        name: name.into(),
        key_id,
        created_at: 1,
        updated_at: 1,
    }
}

fn grant(key_id: Uuid, id: &str) -> GrantRecord {
    GrantRecord {
        grant_id: id.into(),
        key_id,
        name: None,
        grantee_principal: "arn:aws:iam::111122223333:user/u".into(),
        retiring_principal: Some("arn:aws:iam::111122223333:user/r".into()),
        issuing_account: "arn:aws:iam::111122223333:root".into(),
        operations: vec!["Encrypt".into()],
        constraints: None,
        created_at: 1,
        mac: vec![3; 32],
    }
}

fn tag(k: &str, v: &str) -> TagRecord {
    TagRecord {
        key: k.into(),
        value: v.into(),
    }
}

/// Declare one test per engine for a check `async fn name(db: Db)`.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Db::new_sqlite()).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Db::new_postgres()).await
                }
            )+
        }
    };
}

conformance!(
    cas_returns_the_new_revision_and_tells_conflict_from_not_found,
    cas_race_between_two_writers_has_one_winner,
    alias_limit_holds_under_concurrent_creates,
    grant_limit_holds_under_concurrent_creates,
    tag_limit_holds_under_concurrent_writes,
    key_store_deletion_and_key_creation_never_both_win,
    paging_is_ordered_and_complete,
    tombstone_is_a_cas_and_removes_dependents,
    leases_are_exclusive_expire_and_fence,
    scheduler_claims_run_once_across_writers,
    lifecycle_queries_find_what_is_due,
    import_records_round_trip,
    key_materials_round_trip,
    imported_material_of_earlier_versions_is_kept,
    principals_and_policies_round_trip,
    invalidations_reach_the_other_writer,
    migrations_are_safe_for_concurrent_starts,
    key_usage_keeps_the_newest_whatever_the_order,
    multi_region_sets,
);

/// A member of multi-Region set `mrk` in `region` (primary in `REGION`), `Creating` with its
/// pending versions 1..=`versions` when it is a replica.
fn member(mrk: Uuid, region: &str, versions: i64) -> (KeyRecord, Vec<VersionRecord>) {
    let (mut k, v) = key(if region == REGION {
        KeyState::Enabled
    } else {
        KeyState::Creating
    });
    k.region = region.into();
    k.current_version = versions;
    k.multi_region = Some(MultiRegion {
        mrk,
        primary_region: REGION.into(),
    });
    let vs = (1..=versions)
        .map(|n| VersionRecord {
            version: n,
            token_object_id: [k.key_id.as_bytes().as_slice(), &(n as u32).to_be_bytes()].concat(),
            pending: region != REGION,
            ..v.clone()
        })
        .collect();
    (k, vs)
}

/// Multi-Region sets: members found by their set, a replica's intent inserted atomically (a
/// second one refused, a deleted one's tombstone replaced once its material is gone), versions
/// activated and keys swapped all-or-nothing.
async fn multi_region_sets(db: Db) {
    let (a, b) = (db.open().await, db.open().await);
    let mrk = Uuid::new_v4();
    let (primary, pv) = member(mrk, REGION, 2);
    a.insert_key(&primary, &pv[0], &[]).await.unwrap();
    a.insert_version(&pv[1]).await.unwrap();
    let (replica, rv) = member(mrk, "eu-west-1", 2);
    a.insert_replica(&replica, &rv, &[tag("t", "v")], &[])
        .await
        .unwrap();
    assert!(matches!(
        b.insert_replica(&replica, &rv, &[], &[]).await,
        Err(StoreError::AlreadyExists)
    ));
    let set = b.multi_region_keys(mrk).await.unwrap();
    let regions: Vec<&str> = set.iter().map(|k| k.region.as_str()).collect();
    assert_eq!(
        regions,
        ["eu-west-1", REGION],
        "ordered by region, Creating too"
    );
    assert_eq!(set[0].multi_region, replica.multi_region);
    assert_eq!(b.list_tags(replica.key_id).await.unwrap(), [tag("t", "v")]);
    assert!(b
        .multi_region_keys(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .versions(replica.key_id)
        .await
        .unwrap()
        .iter()
        .all(|v| v.pending));

    // Activation is all or nothing: a missing version leaves the key as it was.
    let mut enabled = set[0].clone();
    enabled.state = KeyState::Enabled;
    assert!(matches!(
        a.activate_versions(std::slice::from_ref(&enabled), &[1, 2, 3])
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        b.get_key(replica.key_id).await.unwrap().unwrap().state,
        KeyState::Creating
    );
    let revs = a
        .activate_versions(std::slice::from_ref(&enabled), &[1, 2])
        .await
        .unwrap();
    assert_eq!(revs, [enabled.revision + 1]);
    assert!(b
        .versions(replica.key_id)
        .await
        .unwrap()
        .iter()
        .all(|v| !v.pending));

    // Swapping the primary is one transaction over the set; a stale member fails it whole.
    let mut set = b.multi_region_keys(mrk).await.unwrap();
    for k in &mut set {
        k.multi_region.as_mut().unwrap().primary_region = "eu-west-1".into();
        k.state = KeyState::Updating;
    }
    let mut stale = set.clone();
    stale[1].revision -= 1;
    assert!(matches!(
        a.update_keys(&stale).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        b.get_key(replica.key_id).await.unwrap().unwrap().state,
        KeyState::Enabled,
        "nothing of a failed swap is kept"
    );
    let revs = a.update_keys(&set).await.unwrap();
    assert_eq!(revs.len(), 2);
    for k in b.multi_region_keys(mrk).await.unwrap() {
        assert_eq!(k.multi_region.unwrap().primary_region, "eu-west-1");
        assert_eq!(k.state, KeyState::Updating);
    }
    let updating = b.keys_in_state(KeyState::Updating).await.unwrap();
    assert_eq!(updating.len(), 2);

    // A deleted replica's tombstone: refused while its versions remain, then replaced.
    let mut doomed = b.get_key(replica.key_id).await.unwrap().unwrap();
    doomed.state = KeyState::PendingDeletion;
    doomed.revision = a.update_key(&doomed).await.unwrap();
    a.tombstone_key(&doomed).await.unwrap();
    assert_eq!(b.multi_region_keys(mrk).await.unwrap().len(), 1);
    assert!(matches!(
        b.insert_replica(&replica, &rv, &[], &[]).await,
        Err(StoreError::InUse)
    ));
    for v in 1..=2 {
        a.delete_version(replica.key_id, v).await.unwrap();
    }
    b.insert_replica(&replica, &rv, &[], &[]).await.unwrap();
    let again = a.get_key(replica.key_id).await.unwrap().unwrap();
    assert_eq!(again.state, KeyState::Creating);
    assert_eq!(again.revision, 0);

    // A replica of imported material carries the set's materials, none imported yet.
    let (mut ext, _) = member(mrk, "ap-southeast-2", 1);
    ext.origin = Origin::External;
    let material = MaterialRecord {
        key_id: ext.key_id,
        version: 1,
        check_value: vec![7; 32],
        description: Some("first".into()),
        expiration_model: "KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
        valid_to: None,
        imported: false,
        created_at: 5,
        rotated_at: None,
        rotation_type: None,
    };
    a.insert_replica(&ext, &[], &[], std::slice::from_ref(&material))
        .await
        .unwrap();
    let rec = b.get_import(ext.key_id).await.unwrap().unwrap();
    assert_eq!(rec.materials, vec![material]);
    assert!(b.versions(ext.key_id).await.unwrap().is_empty());
}

async fn key_usage_keeps_the_newest_whatever_the_order(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let k = new_key(&*a, KeyState::Enabled).await;
    let use_at = |at: i64, op: &str| kms_bridge::store::KeyUsageRecord {
        key_id: k.key_id,
        operation: op.into(),
        used_at: at,
        event_id: format!("e{at}"),
        request_id: format!("r{at}"),
    };
    assert!(a.key_last_usage(k.key_id).await.unwrap().is_none());
    a.record_key_usage(&[use_at(20, "Encrypt")]).await.unwrap();
    // An older use written later (another node's late batch) does not replace it.
    b.record_key_usage(&[use_at(10, "Decrypt")]).await.unwrap();
    assert_eq!(
        b.key_last_usage(k.key_id).await.unwrap(),
        Some(use_at(20, "Encrypt"))
    );
    b.record_key_usage(&[use_at(30, "Sign")]).await.unwrap();
    assert_eq!(
        a.key_last_usage(k.key_id).await.unwrap(),
        Some(use_at(30, "Sign"))
    );
    a.record_key_usage(&[]).await.unwrap();
}

async fn cas_returns_the_new_revision_and_tells_conflict_from_not_found(db: Db) {
    let s = db.open().await;
    let mut k = new_key(&*s, KeyState::Enabled).await;
    k.description = "second".into();
    k.mac = vec![7; 32];
    let r1 = s.update_key(&k).await.expect("first update");
    assert_eq!(r1, k.revision + 1);
    // The same (now stale) revision again: the row changed.
    assert!(matches!(s.update_key(&k).await, Err(StoreError::Conflict)));
    k.revision = r1;
    let r2 = s.update_key(&k).await.expect("update at the new revision");
    assert_eq!(r2, r1 + 1);
    let stored = s.get_key(k.key_id).await.unwrap().unwrap();
    assert_eq!(stored.revision, r2);
    assert_eq!(stored.description, "second");
    assert_eq!(stored.mac, vec![7; 32], "the row's MAC is stored as given");
    // A key that does not exist.
    let (ghost, _) = key(KeyState::Enabled);
    assert!(matches!(
        s.update_key(&ghost).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.activate_version(&ghost, 1).await,
        Err(StoreError::NotFound)
    ));
    // activate_version is a CAS too and returns the revision.
    let mut v2 = VersionRecord {
        version: 2,
        token_object_id: Uuid::new_v4().as_bytes().to_vec(),
        pending: true,
        ..key(KeyState::Enabled).1
    };
    v2.key_id = k.key_id;
    s.insert_version(&v2).await.unwrap();
    k.revision = r2;
    k.current_version = 2;
    let r3 = s.activate_version(&k, 2).await.unwrap();
    assert_eq!(r3, r2 + 1);
    let versions = s.versions(k.key_id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(!versions[1].pending);
    // The same version number twice is refused by the store (a rotation claim).
    assert!(matches!(
        s.insert_version(&v2).await,
        Err(StoreError::AlreadyExists)
    ));
}

async fn cas_race_between_two_writers_has_one_winner(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let k = new_key(&*a, KeyState::Enabled).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut k = k.clone();
        tasks.push(tokio::spawn(async move {
            k.description = format!("writer {i}");
            s.update_key(&k).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                won += 1;
                assert_eq!(r, k.revision + 1);
            }
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one compare-and-swap wins");
    assert_eq!(
        b.get_key(k.key_id).await.unwrap().unwrap().revision,
        k.revision + 1
    );
}

async fn alias_limit_holds_under_concurrent_creates(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let k = new_key(&*a, KeyState::Enabled).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let rec = alias(k.key_id, &format!("alias/a{i:02}"));
        tasks.push(tokio::spawn(async move { s.insert_alias(&rec, 5).await }));
    }
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LimitExceeded) => limited += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, limited), (5, 15));
    assert_eq!(a.count_aliases_for_key(k.key_id).await.unwrap(), 5);
    // A duplicate name, an unknown key.
    let existing = a
        .list_aliases(REGION, ACCOUNT, Some(k.key_id), None, 100)
        .await
        .unwrap();
    let k2 = new_key(&*a, KeyState::Enabled).await;
    assert!(matches!(
        a.insert_alias(&alias(k2.key_id, &existing[0].name), 5)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        a.insert_alias(&alias(Uuid::new_v4(), "alias/ghost"), 5)
            .await,
        Err(StoreError::NotFound)
    ));
    // Update and delete.
    let mut moved = existing[0].clone();
    moved.key_id = k2.key_id;
    b.update_alias(&moved).await.unwrap();
    assert_eq!(
        a.get_alias(REGION, ACCOUNT, &moved.name)
            .await
            .unwrap()
            .unwrap()
            .key_id,
        k2.key_id
    );
    assert!(matches!(
        b.update_alias(&alias(k2.key_id, "alias/none")).await,
        Err(StoreError::NotFound)
    ));
    assert!(a.delete_alias(REGION, ACCOUNT, &moved.name).await.unwrap());
    assert!(!a.delete_alias(REGION, ACCOUNT, &moved.name).await.unwrap());
}

async fn grant_limit_holds_under_concurrent_creates(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let k = new_key(&*a, KeyState::Enabled).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let rec = grant(k.key_id, &format!("g{i:02}"));
        tasks.push(tokio::spawn(async move { s.insert_grant(&rec, 7).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LimitExceeded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 7);
    assert_eq!(a.count_grants_for_key(k.key_id).await.unwrap(), 7);
    assert!(matches!(
        a.insert_grant(&grant(Uuid::new_v4(), "orphan"), 7).await,
        Err(StoreError::NotFound)
    ));
    let g = a.grants_for_key(k.key_id, None).await.unwrap();
    assert_eq!(g.len(), 7);
    assert!(a.delete_grant(&g[0].grant_id).await.unwrap());
    assert!(!b.delete_grant(&g[0].grant_id).await.unwrap());
    assert!(b.get_grant(&g[0].grant_id).await.unwrap().is_none());
}

async fn tag_limit_holds_under_concurrent_writes(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let k = new_key(&*a, KeyState::Enabled).await;
    a.put_tags(k.key_id, &[tag("base", "1")], 10).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = k.key_id;
        tasks.push(tokio::spawn(async move {
            s.put_tags(id, &[tag(&format!("t{i:02}"), "v")], 10).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::LimitExceeded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 9, "ten tags at most, one was there");
    assert_eq!(a.list_tags(k.key_id).await.unwrap().len(), 10);
    // Replacing a value at the limit is not adding a tag.
    a.put_tags(k.key_id, &[tag("base", "2")], 10).await.unwrap();
    let tags = b.list_tags(k.key_id).await.unwrap();
    assert_eq!(tags.len(), 10);
    assert_eq!(tags[0], tag("base", "2"));
    // A refused write leaves nothing behind, even its replacements.
    assert!(matches!(
        a.put_tags(k.key_id, &[tag("base", "3"), tag("zz", "new")], 10)
            .await,
        Err(StoreError::LimitExceeded)
    ));
    assert_eq!(b.list_tags(k.key_id).await.unwrap(), tags);
    b.remove_tags(k.key_id, &["base".into()]).await.unwrap();
    assert_eq!(a.list_tags(k.key_id).await.unwrap().len(), 9);
    assert!(matches!(
        a.put_tags(Uuid::new_v4(), &[tag("x", "y")], 10).await,
        Err(StoreError::NotFound)
    ));
}

fn key_store(id: &str) -> CustomKeyStoreRecord {
    CustomKeyStoreRecord {
        id: id.into(),
        region: REGION.into(),
        account: ACCOUNT.into(),
        name: format!("name-{id}"),
        cluster_id: format!("cluster-{id}"),
        trust_anchor: "anchor".into(),
        sealed_password: vec![1, 2, 3],
        connection_state: "DISCONNECTED".into(),
        connection_error: None,
        created_at: 1,
    }
}

async fn key_store_deletion_and_key_creation_never_both_win(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    // A store with a key in it cannot be deleted.
    a.insert_key_store(&key_store("cks-1")).await.unwrap();
    let (mut k, v) = key(KeyState::Enabled);
    k.custom_key_store_id = Some("cks-1".into());
    a.insert_key(&k, &v, &[]).await.unwrap();
    assert!(matches!(
        b.delete_key_store("cks-1").await,
        Err(StoreError::InUse)
    ));
    assert_eq!(a.count_keys_in_store("cks-1").await.unwrap(), 1);
    // Races: a key created in a store while it is deleted.
    for round in 0..10 {
        let id = format!("cks-race-{round}");
        a.insert_key_store(&key_store(&id)).await.unwrap();
        let (mut k, v) = key(KeyState::Enabled);
        k.custom_key_store_id = Some(id.clone());
        let (sa, sb, id2) = (a.clone(), b.clone(), id.clone());
        let create = tokio::spawn(async move { sa.insert_key(&k, &v, &[]).await });
        let delete = tokio::spawn(async move { sb.delete_key_store(&id2).await });
        let (created, deleted) = (create.await.unwrap(), delete.await.unwrap());
        match (&created, &deleted) {
            (Ok(()), Err(StoreError::InUse)) => {}
            (Err(StoreError::NotFound), Ok(true)) => {}
            other => panic!("round {round}: both or neither won: {other:?}"),
        }
        let stores = a.key_stores().await.unwrap();
        let exists = stores.iter().any(|s| s.id == id);
        assert_eq!(exists, created.is_ok(), "a key never outlives its store");
    }
    assert!(!a.delete_key_store("no-such-store").await.unwrap());
    assert!(matches!(
        a.update_key_store(&key_store("no-such-store")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        a.insert_key_store(&key_store("cks-1")).await,
        Err(StoreError::AlreadyExists)
    ));
}

async fn paging_is_ordered_and_complete(db: Db) {
    let s = db.open().await;
    let mut ids = Vec::new();
    for _ in 0..23 {
        ids.push(new_key(&*s, KeyState::Enabled).await.key_id);
    }
    // Keys in Creating are not listed.
    new_key(&*s, KeyState::Creating).await;
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_keys(REGION, ACCOUNT, after, 5).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().map(|k| k.key_id);
        seen.extend(page.into_iter().map(|k| k.key_id));
    }
    assert_eq!(seen, ids);
    assert!(s
        .list_keys("eu-west-1", ACCOUNT, None, 100)
        .await
        .unwrap()
        .is_empty());
    // Aliases page by name, bytewise (upper case sorts before lower case).
    let names = [
        "alias/B",
        "alias/a",
        "alias/a-1",
        "alias/b",
        "alias/Z_9",
        "alias/aa",
    ];
    for (i, n) in names.iter().enumerate() {
        s.insert_alias(&alias(ids[i % 3], n), 50).await.unwrap();
    }
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list_aliases(REGION, ACCOUNT, None, after.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|a| a.name.clone());
        got.extend(page.into_iter().map(|a| a.name));
    }
    assert_eq!(got, want);
    let of_first = s
        .list_aliases(REGION, ACCOUNT, Some(ids[0]), None, 100)
        .await
        .unwrap();
    assert_eq!(of_first.len(), 2);
    // Grants page by id, optionally for one grantee; retirable grants likewise.
    for i in 0..9 {
        let mut g = grant(ids[0], &format!("grant-{i}"));
        if i % 3 == 0 {
            g.grantee_principal = "arn:aws:iam::111122223333:user/other".into();
        }
        s.insert_grant(&g, 100).await.unwrap();
    }
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .grants_page(ids[0], None, after.as_deref(), 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|g| g.grant_id.clone());
        got.extend(page.into_iter().map(|g| g.grant_id));
    }
    assert_eq!(
        got,
        (0..9).map(|i| format!("grant-{i}")).collect::<Vec<_>>()
    );
    let other = s
        .grants_page(
            ids[0],
            Some("arn:aws:iam::111122223333:user/other"),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(other.len(), 3);
    let retirable = s
        .grants_retirable_by("arn:aws:iam::111122223333:user/r", Some("grant-4"), 100)
        .await
        .unwrap();
    assert_eq!(retirable.len(), 4);
}

async fn tombstone_is_a_cas_and_removes_dependents(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let (mut k, v) = key(KeyState::PendingDeletion);
    k.deletion_date = Some(10);
    a.insert_key(&k, &v, &[tag("t", "v")]).await.unwrap();
    a.insert_alias(&alias(k.key_id, "alias/doomed"), 50)
        .await
        .unwrap();
    a.insert_grant(&grant(k.key_id, "doomed-grant"), 50)
        .await
        .unwrap();
    let stored = a.get_grant("doomed-grant").await.unwrap().unwrap();
    assert_eq!(
        stored,
        grant(k.key_id, "doomed-grant"),
        "a grant row (and its MAC) round-trips"
    );
    // A cancel (a write) in between makes the tombstone fail: never early, never after a cancel.
    let mut cancelled = k.clone();
    cancelled.state = KeyState::Disabled;
    cancelled.deletion_date = None;
    let r = b.update_key(&cancelled).await.unwrap();
    assert!(matches!(
        a.tombstone_key(&k).await,
        Err(StoreError::Conflict)
    ));
    // Back to PendingDeletion at a new revision; a stale copy still fails, the fresh one wins.
    cancelled.revision = r;
    cancelled.state = KeyState::PendingDeletion;
    cancelled.deletion_date = Some(10);
    let r = b.update_key(&cancelled).await.unwrap();
    let fresh = KeyRecord {
        revision: r,
        mac: vec![9; 32],
        ..cancelled.clone()
    };
    a.tombstone_key(&fresh).await.unwrap();
    let gone = b.get_key(k.key_id).await.unwrap().unwrap();
    assert_eq!(gone.state, KeyState::Deleted);
    assert_eq!(
        gone.mac,
        vec![9; 32],
        "the tombstone stores the MAC given for it"
    );
    assert!(b
        .get_alias(REGION, ACCOUNT, "alias/doomed")
        .await
        .unwrap()
        .is_none());
    assert!(b.get_grant("doomed-grant").await.unwrap().is_none());
    assert!(b.list_tags(k.key_id).await.unwrap().is_empty());
    assert_eq!(
        b.deleted_keys_with_material().await.unwrap(),
        vec![k.key_id]
    );
    b.delete_version(k.key_id, 1).await.unwrap();
    assert!(b.deleted_keys_with_material().await.unwrap().is_empty());
    // Tombstoning twice, or a key that is gone: not a success.
    assert!(a.tombstone_key(&fresh).await.is_err());
    let (ghost, _) = key(KeyState::PendingDeletion);
    assert!(matches!(
        a.tombstone_key(&ghost).await,
        Err(StoreError::NotFound)
    ));
    // Deleted keys are not listed.
    assert!(a
        .list_keys(REGION, ACCOUNT, None, 100)
        .await
        .unwrap()
        .iter()
        .all(|x| x.key_id != k.key_id));
}

async fn leases_are_exclusive_expire_and_fence(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let first = a.try_lease("job", "node-a", 400).await.unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(b.try_lease("job", "node-b", 400).await.unwrap(), None);
    // Renewal keeps the fence.
    assert_eq!(a.try_lease("job", "node-a", 400).await.unwrap(), Some(1));
    // Another lease name is independent.
    assert_eq!(b.try_lease("other", "node-b", 400).await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Lapsed: B takes it with a higher fence; A is deposed.
    assert_eq!(b.try_lease("job", "node-b", 400).await.unwrap(), Some(2));
    assert_eq!(a.try_lease("job", "node-a", 400).await.unwrap(), None);
    // Concurrent takers of a lapsed lease: exactly one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.try_lease("job", &format!("racer-{i}"), 5_000).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(f) = t.await.unwrap().unwrap() {
            winners.push(f);
        }
    }
    assert_eq!(winners, vec![3], "one new holder, with the next fence");
}

async fn scheduler_claims_run_once_across_writers(db: Db) {
    // Two writers that both found the same due deletion and rotation: each is applied once.
    let a = db.open().await;
    let b = db.open().await;
    let (mut k, v) = key(KeyState::PendingDeletion);
    k.deletion_date = Some(5);
    a.insert_key(&k, &v, &[]).await.unwrap();
    let due_a = a.due_deletions(10).await.unwrap();
    let due_b = b.due_deletions(10).await.unwrap();
    assert_eq!(due_a, due_b);
    let (ra, rb) = tokio::join!(a.tombstone_key(&due_a[0]), b.tombstone_key(&due_b[0]));
    assert_eq!(
        [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count(),
        1,
        "{ra:?} {rb:?}"
    );
    // A rotation claim: version 2 inserted by one writer only.
    let r = new_key(&*a, KeyState::Enabled).await;
    let mk = |oid: u8| VersionRecord {
        key_id: r.key_id,
        version: 2,
        token_object_id: vec![oid; 16],
        material_id: "m".into(),
        created_at: 2,
        rotation_type: None,
        pending: true,
    };
    let (va, vb) = (mk(1), mk(2));
    let (ra, rb) = tokio::join!(a.insert_version(&va), b.insert_version(&vb));
    assert_eq!(
        [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count(),
        1,
        "{ra:?} {rb:?}"
    );
    assert!(matches!(
        ra.err().or(rb.err()),
        Some(StoreError::AlreadyExists)
    ));
    assert_eq!(a.pending_versions().await.unwrap().len(), 1);
}

async fn lifecycle_queries_find_what_is_due(db: Db) {
    let s = db.open().await;
    let now = 1_000 * 86_400_000;
    let (mut rot, v) = key(KeyState::Enabled);
    rot.rotation_enabled = true;
    rot.rotation_period_days = Some(90);
    rot.rotation_base = Some(now - 91 * 86_400_000);
    s.insert_key(&rot, &v, &[]).await.unwrap();
    let (mut fresh, v) = key(KeyState::Enabled);
    fresh.rotation_enabled = true;
    fresh.rotation_period_days = Some(90);
    fresh.rotation_base = Some(now - 89 * 86_400_000);
    s.insert_key(&fresh, &v, &[]).await.unwrap();
    let (mut disabled, v) = key(KeyState::Disabled);
    disabled.rotation_enabled = true;
    disabled.rotation_period_days = Some(90);
    disabled.rotation_base = Some(0);
    s.insert_key(&disabled, &v, &[]).await.unwrap();
    let due: Vec<Uuid> = s
        .due_rotations(now)
        .await
        .unwrap()
        .iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(due, vec![rot.key_id]);

    let (mut del, v) = key(KeyState::PendingDeletion);
    del.deletion_date = Some(now);
    s.insert_key(&del, &v, &[]).await.unwrap();
    let (mut later, v) = key(KeyState::PendingDeletion);
    later.deletion_date = Some(now + 1);
    s.insert_key(&later, &v, &[]).await.unwrap();
    let due: Vec<Uuid> = s
        .due_deletions(now)
        .await
        .unwrap()
        .iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(due, vec![del.key_id]);

    // Imported material that expires.
    let (mut ext, _) = key(KeyState::PendingImport);
    ext.origin = Origin::External;
    s.insert_external_key(&ext, &[]).await.unwrap();
    assert!(s.due_expirations(now).await.unwrap().is_empty());
    let v = VersionRecord {
        key_id: ext.key_id,
        version: 1,
        token_object_id: vec![9; 16],
        material_id: "m".into(),
        created_at: 1,
        rotation_type: None,
        pending: true,
    };
    s.insert_version(&v).await.unwrap();
    // Still pending: not expired yet.
    assert!(s.due_expirations(now).await.unwrap().is_empty());
    ext.state = KeyState::Enabled;
    let m = material(ext.key_id, 1, b"kcv", Some(now));
    ext.revision = s.put_material(&m, true, Some(&ext)).await.unwrap().unwrap();
    let due: Vec<Uuid> = s
        .due_expirations(now)
        .await
        .unwrap()
        .iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(due, vec![ext.key_id]);
    assert!(s.due_expirations(now - 1).await.unwrap().is_empty());
    // Material that is not in the token (deleted, or expired and destroyed) is not due.
    let gone = MaterialRecord {
        imported: false,
        ..m
    };
    s.put_material(&gone, false, None).await.unwrap();
    assert!(s.due_expirations(now).await.unwrap().is_empty());
}

/// A database made before migration 6 (one material per key, in `imports`) keeps it as version
/// 1 of `key_materials`: in the token if its version row is, else to be imported again.
async fn imported_material_of_earlier_versions_is_kept(db: Db) {
    let (with, without) = (Uuid::new_v4(), Uuid::new_v4());
    let legacy = |key: Uuid, state: &str| {
        vec![
            format!(
                "INSERT INTO keys (key_id, region, account, description, key_spec, key_usage, \
                 origin, state, created_at, rotation_enabled, current_version, policy, revision) \
                 VALUES ('{key}', '{REGION}', '{ACCOUNT}', '', 'SYMMETRIC_DEFAULT', \
                 'ENCRYPT_DECRYPT', 'EXTERNAL', '{state}', 1, 0, 1, '{{}}', 0)"
            ),
            format!(
                "INSERT INTO imports (key_id, expiration_model, valid_to, check_value) \
                 VALUES ('{key}', 'KEY_MATERIAL_EXPIRES', 77, {})",
                if db.is_postgres() {
                    "'\\x6b6376'::bytea"
                } else {
                    "x'6b6376'"
                }
            ),
        ]
    };
    let mut statements = legacy(with, "Enabled");
    statements.extend(legacy(without, "PendingImport"));
    statements.push(format!(
        "INSERT INTO key_versions (key_id, version, token_object_id, material_id, created_at, \
         pending) VALUES ('{with}', 1, {}, 'm', 1, 0)",
        if db.is_postgres() {
            "'\\x01'::bytea"
        } else {
            "x'01'"
        }
    ));
    // Migrations 1–4 only (the migrator's list is semver-exempt in sqlx; pinned by Cargo.lock).
    macro_rules! up_to_4 {
        ($path:literal, $pool:expr) => {{
            let mut m = sqlx::migrate!($path);
            m.migrations = m
                .migrations
                .iter()
                .filter(|x| x.version <= 4)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            m.run($pool).await.unwrap();
            for sql in &statements {
                sqlx::query(sql).execute($pool).await.unwrap();
            }
        }};
    }
    match &db {
        Db::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
            up_to_4!("./src/store/migrations/sqlite", &pool);
            pool.close().await;
        }
        Db::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            up_to_4!("./src/store/migrations/postgres", &pool);
            pool.close().await;
        }
    }
    let s = db.open().await;
    for (key, imported) in [(with, true), (without, false)] {
        let got = s.get_import(key).await.unwrap().unwrap();
        assert_eq!(
            got.materials,
            vec![MaterialRecord {
                imported,
                created_at: 0,
                ..material(key, 1, b"kcv", Some(77))
            }]
        );
    }
}

fn material(key_id: Uuid, version: i64, kcv: &[u8], valid_to: Option<i64>) -> MaterialRecord {
    MaterialRecord {
        key_id,
        version,
        check_value: kcv.to_vec(),
        description: None,
        expiration_model: if valid_to.is_some() {
            "KEY_MATERIAL_EXPIRES"
        } else {
            "KEY_MATERIAL_DOES_NOT_EXPIRE"
        }
        .into(),
        valid_to,
        imported: true,
        created_at: 1,
        rotated_at: None,
        rotation_type: None,
    }
}

fn pending_version(key_id: Uuid, version: i64) -> VersionRecord {
    VersionRecord {
        key_id,
        version,
        token_object_id: [
            key_id.as_bytes().as_slice(),
            &(version as u32).to_be_bytes(),
        ]
        .concat(),
        material_id: format!("m{version}"),
        created_at: 1,
        rotation_type: None,
        pending: true,
    }
}

/// Several key materials of an imported key: written with their version's completion and the
/// key's compare-and-swap in one transaction, at most one pending rotation, rotation to it,
/// and a material that outlives its token object.
async fn key_materials_round_trip(db: Db) {
    let s = db.open().await;
    let (mut ext, _) = key(KeyState::PendingImport);
    ext.origin = Origin::External;
    s.insert_external_key(&ext, &[]).await.unwrap();
    assert!(s
        .get_import(ext.key_id)
        .await
        .unwrap()
        .unwrap()
        .materials
        .is_empty());

    // The first material: version completed, key enabled, atomically.
    s.insert_version(&pending_version(ext.key_id, 1))
        .await
        .unwrap();
    let mut first = material(ext.key_id, 1, b"first", None);
    first.description = Some("one".into());
    ext.state = KeyState::Enabled;
    ext.revision = s
        .put_material(&first, true, Some(&ext))
        .await
        .unwrap()
        .unwrap();
    // A stale compare-and-swap writes nothing, the material neither.
    let mut stale = ext.clone();
    stale.revision -= 1;
    let second = material(ext.key_id, 2, b"second", Some(50));
    s.insert_version(&pending_version(ext.key_id, 2))
        .await
        .unwrap();
    assert!(matches!(
        s.put_material(&second, true, Some(&stale)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_import(ext.key_id)
            .await
            .unwrap()
            .unwrap()
            .materials
            .len(),
        1
    );
    // Activating a version that is not pending: NotFound, nothing written.
    assert!(matches!(
        s.put_material(&material(ext.key_id, 3, b"x", None), true, None)
            .await,
        Err(StoreError::NotFound)
    ));
    // New material pending rotation (above the current version) …
    assert_eq!(s.put_material(&second, true, None).await.unwrap(), None);
    // … and no second one while it waits.
    s.insert_version(&pending_version(ext.key_id, 3))
        .await
        .unwrap();
    assert!(matches!(
        s.put_material(&material(ext.key_id, 3, b"third", None), true, None)
            .await,
        Err(StoreError::Conflict)
    ));
    s.delete_pending_version(ext.key_id, 3).await.unwrap();
    let got = s.get_import(ext.key_id).await.unwrap().unwrap();
    assert_eq!(got.materials, vec![first.clone(), second.clone()]);

    // Rotation makes it current and marks it rotated, with the key's CAS.
    let mut rotated = s.get_key(ext.key_id).await.unwrap().unwrap();
    rotated.current_version = 2;
    assert!(matches!(
        s.rotate_to_material(
            &KeyRecord {
                revision: rotated.revision + 5,
                ..rotated.clone()
            },
            2,
            70
        )
        .await,
        Err(StoreError::Conflict)
    ));
    s.rotate_to_material(&rotated, 2, 70).await.unwrap();
    assert_eq!(
        s.get_key(ext.key_id)
            .await
            .unwrap()
            .unwrap()
            .current_version,
        2
    );
    let got = s.get_import(ext.key_id).await.unwrap().unwrap();
    assert_eq!(got.materials[1].rotated_at, Some(70));
    assert_eq!(got.materials[1].rotation_type, Some(RotationType::OnDemand));
    // Only imported material can be rotated to.
    s.put_material(
        &MaterialRecord {
            imported: false,
            ..first.clone()
        },
        false,
        None,
    )
    .await
    .unwrap();
    let again = s.get_key(ext.key_id).await.unwrap().unwrap();
    assert!(matches!(
        s.rotate_to_material(&again, 1, 80).await,
        Err(StoreError::NotFound)
    ));
    // Deleted material keeps its row (it can come back); a forgotten one is gone.
    let got = s.get_import(ext.key_id).await.unwrap().unwrap();
    assert!(!got.materials[0].imported);
    assert_eq!(got.materials[0].description.as_deref(), Some("one"));
    s.delete_material(ext.key_id, 2).await.unwrap();
    let got = s.get_import(ext.key_id).await.unwrap().unwrap();
    assert_eq!(got.materials.len(), 1);
}

async fn import_records_round_trip(db: Db) {
    let s = db.open().await;
    let (mut ext, _) = key(KeyState::PendingImport);
    ext.origin = Origin::External;
    s.insert_external_key(&ext, &[tag("a", "b")]).await.unwrap();
    let rec = ImportRecord {
        key_id: ext.key_id,
        wrapping_object_id: Some(vec![7; 16]),
        wrapping_algorithm: Some("RSAES_OAEP_SHA_1".into()),
        wrapping_key_spec: Some("RSA_2048".into()),
        nonce: Some(vec![1, 2, 3]),
        parameters_valid_to: Some(99),
        ..Default::default()
    };
    s.set_import_parameters(&rec).await.unwrap();
    let got = s.get_import(ext.key_id).await.unwrap().unwrap();
    assert_eq!(got.wrapping_object_id, rec.wrapping_object_id);
    assert_eq!(got.nonce, rec.nonce);
    assert_eq!(got.parameters_valid_to, Some(99));
    assert!(got.materials.is_empty());
    let ids = s.all_token_object_ids().await.unwrap();
    assert!(
        ids.contains(&vec![7; 16]),
        "wrapping keys are known objects"
    );
    let ghost = ImportRecord {
        key_id: Uuid::new_v4(),
        ..Default::default()
    };
    assert!(matches!(
        s.set_import_parameters(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

async fn principals_and_policies_round_trip(db: Db) {
    let s = db.open().await;
    let p = PrincipalRecord {
        arn: "arn:aws:iam::111122223333:user/alice".into(),
        account: ACCOUNT.into(),
        kind: PrincipalKind::User,
        name: "alice".into(),
        created_at: 3,
    };
    s.insert_principal(&p).await.unwrap();
    assert!(matches!(
        s.insert_principal(&p).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.get_principal(&p.arn).await.unwrap(), Some(p.clone()));
    let k = AccessKeyRecord {
        access_key_id: "AKIACONFORMANCE".into(),
        principal_arn: p.arn.clone(),
        sealed_secret: vec![0, 255, 7],
        active: true,
        created_at: 4,
        mac: vec![1; 32],
    };
    s.insert_access_key(&k).await.unwrap();
    assert_eq!(
        s.get_access_key(&k.access_key_id).await.unwrap(),
        Some(k.clone())
    );
    let pol = IdentityPolicyRecord {
        principal_arn: p.arn.clone(),
        name: "p1".into(),
        document: "{}".into(),
        mac: vec![2; 32],
    };
    s.put_identity_policy(&pol).await.unwrap();
    s.put_identity_policy(&IdentityPolicyRecord {
        document: "{\"Version\":\"2012-10-17\"}".into(),
        mac: vec![4; 32],
        ..pol.clone()
    })
    .await
    .unwrap();
    let pols = s.identity_policies(&p.arn).await.unwrap();
    assert_eq!(pols.len(), 1);
    assert_eq!(pols[0].document, "{\"Version\":\"2012-10-17\"}");
    assert_eq!(
        pols[0].mac,
        vec![4; 32],
        "a replaced policy carries its new MAC"
    );
    assert!(s.delete_identity_policy(&p.arn, "p1").await.unwrap());
    assert!(!s.delete_identity_policy(&p.arn, "p1").await.unwrap());
    assert!(s.delete_access_key(&k.access_key_id).await.unwrap());
    assert!(s.get_access_key(&k.access_key_id).await.unwrap().is_none());
    assert_eq!(s.list_principals().await.unwrap(), vec![p]);
}

/// Wait for a specific invalidation on `rx` (others may come first).
async fn expect_invalidation(
    rx: &mut tokio::sync::broadcast::Receiver<Invalidation>,
    want: &Invalidation,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within 200 ms of the write's answer"))
            .expect("channel open");
        if &got == want {
            return;
        }
    }
}

async fn invalidations_reach_the_other_writer(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let Some(mut rx) = b.subscribe() else {
        // One node only: nothing to hear from, and caches are always coherent.
        assert!(!db.is_postgres(), "PostgreSQL must announce writes");
        assert!(b.cache_coherent());
        return;
    };
    assert!(b.cache_coherent());
    let mut k = new_key(&*a, KeyState::Enabled).await;
    expect_invalidation(&mut rx, &Invalidation::Key(k.key_id)).await;
    k.state = KeyState::Disabled;
    a.update_key(&k).await.unwrap();
    // The writer's answer came after its notification went round: B has it (nearly) at once.
    let got = tokio::time::timeout(Duration::from_millis(50), rx.recv())
        .await
        .expect("invalidation within 50 ms of the answer")
        .unwrap();
    assert_eq!(got, Invalidation::Key(k.key_id));
    a.insert_alias(&alias(k.key_id, "alias/heard"), 50)
        .await
        .unwrap();
    expect_invalidation(
        &mut rx,
        &Invalidation::Alias {
            region: REGION.into(),
            account: ACCOUNT.into(),
            name: "alias/heard".into(),
        },
    )
    .await;
    a.insert_principal(&PrincipalRecord {
        arn: "arn:aws:iam::111122223333:user/bob".into(),
        account: ACCOUNT.into(),
        kind: PrincipalKind::User,
        name: "bob".into(),
        created_at: 1,
    })
    .await
    .unwrap();
    a.insert_access_key(&AccessKeyRecord {
        access_key_id: "AKIAHEARD".into(),
        principal_arn: "arn:aws:iam::111122223333:user/bob".into(),
        sealed_secret: vec![1],
        active: true,
        created_at: 1,
        mac: Vec::new(),
    })
    .await
    .unwrap();
    a.delete_access_key("AKIAHEARD").await.unwrap();
    expect_invalidation(&mut rx, &Invalidation::AccessKey("AKIAHEARD".into())).await;
    a.put_identity_policy(&IdentityPolicyRecord {
        principal_arn: "arn:aws:iam::111122223333:user/bob".into(),
        name: "p".into(),
        document: "{}".into(),
        mac: Vec::new(),
    })
    .await
    .unwrap();
    expect_invalidation(
        &mut rx,
        &Invalidation::Principal("arn:aws:iam::111122223333:user/bob".into()),
    )
    .await;
    // A tombstone announces the key and each alias it removed.
    let mut pd = k.clone();
    pd.state = KeyState::PendingDeletion;
    pd.revision = a.get_key(k.key_id).await.unwrap().unwrap().revision;
    pd.revision = a.update_key(&pd).await.unwrap();
    a.tombstone_key(&pd).await.unwrap();
    expect_invalidation(
        &mut rx,
        &Invalidation::Alias {
            region: REGION.into(),
            account: ACCOUNT.into(),
            name: "alias/heard".into(),
        },
    )
    .await;
    // A's own writes are not echoed to A's subscribers (its caches invalidated them already).
    let mut own = a.subscribe().unwrap();
    let k2 = new_key(&*a, KeyState::Enabled).await;
    expect_invalidation(&mut rx, &Invalidation::Key(k2.key_id)).await;
    assert!(own.try_recv().is_err());
}

async fn migrations_are_safe_for_concurrent_starts(db: Db) {
    // Several nodes starting at once on an empty database.
    let opened = futures_join(&db).await;
    let k = new_key(&*opened[0], KeyState::Enabled).await;
    for s in &opened {
        assert!(s.get_key(k.key_id).await.unwrap().is_some());
    }
    // And again on a migrated database.
    let again = db.open().await;
    assert!(again.get_key(k.key_id).await.unwrap().is_some());
}

async fn futures_join(db: &Db) -> Vec<Arc<dyn MetadataStore>> {
    let (a, b, c) = tokio::join!(db.open(), db.open(), db.open());
    vec![a, b, c]
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = PgOptions {
        url: format!("postgres://kms@127.0.0.1:{port}/none"),
        pool_size: 1,
        statement_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
        connect_retries: 2,
    };
    match PgStore::open(&opts).await {
        Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("opened a database that does not exist"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_unavailable_then_heals() {
    let mut server = common::pg::PgServer::start();
    let url = server.create_database();
    let s = PgStore::open(&PgOptions {
        url: url.clone(),
        pool_size: 2,
        statement_timeout: Duration::from_secs(2),
        acquire_timeout: Duration::from_secs(1),
        connect_retries: 2,
    })
    .await
    .unwrap();
    let k = new_key(&s, KeyState::Enabled).await;
    assert!(s.cache_coherent());
    server.halt();
    match s.get_key(k.key_id).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable during the outage, got {other:?}"),
    }
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
    // The listener notices too: caches are not to be trusted.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.cache_coherent() {
        assert!(
            std::time::Instant::now() < deadline,
            "listener did not notice"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(got)) = s.get_key(k.key_id).await {
            assert_eq!(got.key_id, k.key_id);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !s.cache_coherent() {
        assert!(
            std::time::Instant::now() < deadline,
            "listener did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes work again and are announced.
    let other = PgStore::open(&pg_options(&url)).await.unwrap();
    let mut rx = other.subscribe().unwrap();
    let mut k2 = k.clone();
    k2.description = "after the outage".into();
    s.update_key(&k2).await.unwrap();
    expect_invalidation(&mut rx, &Invalidation::Key(k.key_id)).await;
}
