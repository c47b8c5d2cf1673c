//! Several kms-bridge nodes on one PostgreSQL database and one token: every node answers
//! for every key, a change made through one node binds the others (before the writer answers the
//! change is on every listener's connection; see `binds`), the loss of a node
//! loses nothing, singleton work runs once, and a database outage is an error, never a wrong
//! answer. Real processes, a real PostgreSQL server started by the test, real AWS SDK calls.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyState;
use common::pg::PgServer;
use common::*;

/// `n` nodes on `dir`'s token, sharing the database `url`, each with its own data directory
/// (audit trail). Started one after the other, as SoftHSM wants.
fn start_nodes(dir: &TestDir, url: &str, n: usize, extra: &[(&str, &str)]) -> Vec<Server> {
    dir.use_database(url);
    (0..n)
        .map(|i| start_node(dir, i, extra))
        .collect::<Vec<_>>()
}

fn start_node(dir: &TestDir, i: usize, extra: &[(&str, &str)]) -> Server {
    let data = dir.path.join(format!("node-{i}"));
    let data = data.to_string_lossy().into_owned();
    let node_id = format!("node-{i}");
    let mut env: Vec<(&str, &str)> = vec![
        ("KMS_BRIDGE_DATA_DIR", &data),
        ("KMS_BRIDGE_NODE_ID", &node_id),
        ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
    ];
    env.extend_from_slice(extra);
    Server::start(dir, &env)
}

async fn new_key(server: &Server) -> String {
    server
        .client()
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("metadata")
        .key_id
}

async fn encrypt(server: &Server, creds: &Creds, key: &str) -> Result<Vec<u8>, String> {
    server
        .client_for(creds)
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"cluster".to_vec()))
        .send()
        .await
        .map(|r| r.ciphertext_blob.expect("ciphertext").into_inner())
        .map_err(|e| code(&e))
}

/// Another node's view of a change: the writer answers once its own invalidation came back
/// from PostgreSQL, when every listener has it on its connection; the other node applies it
/// when its listener task next runs — at once on an idle machine, but it can lag when the CPUs
/// are saturated (seen: a few ms under a parallel build). So: ask until `want` answers, at most
/// for the writer's echo bound (2 s), and report any lag.
async fn binds<F, Fut>(what: &str, want: Result<Vec<u8>, String>, ask: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, String>>,
{
    let start = Instant::now();
    for attempt in 1.. {
        let got = ask().await;
        let same = match (&got, &want) {
            (Err(a), Err(b)) => a == b,
            (Ok(_), Ok(_)) => true,
            _ => false,
        };
        if same {
            if attempt > 1 {
                eprintln!("{what}: bound at attempt {attempt}, {:?}", start.elapsed());
            }
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{what}: still {got:?} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A multi-Region key across nodes and regions: made on one node, replicated on another,
/// its ciphertexts and rotations crossing both; UpdatePrimaryRegion on one node binds the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_region_key_spans_nodes_and_regions() {
    let pg = common::pg::shared();
    let url = pg.create_database();
    let dir = TestDir::new();
    let nodes = start_nodes(&dir, &url, 2, &[]);
    let (a0, b0) = (nodes[0].client(), nodes[0].client_in(OTHER_REGION));
    let (a1, b1) = (nodes[1].client(), nodes[1].client_in(OTHER_REGION));
    let id = a0
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    a1.replicate_key()
        .key_id(&id)
        .replica_region(OTHER_REGION)
        .send()
        .await
        .unwrap();
    let decrypts = |kms: aws_sdk_kms::Client, blob: Vec<u8>| async move {
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob))
            .send()
            .await
            .map(|d| d.plaintext.unwrap().into_inner())
            .map_err(|e| code(&e))
    };
    let blob = encrypt_blob(&a0, &id, b"cluster").await;
    assert_eq!(
        decrypts(b0.clone(), blob.clone()).await.unwrap(),
        b"cluster"
    );
    assert_eq!(decrypts(b1.clone(), blob).await.unwrap(), b"cluster");
    a1.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let rotated = encrypt_blob(&b0, &id, b"cluster").await;
    binds("the new version reached every node", Ok(Vec::new()), || {
        decrypts(a0.clone(), rotated.clone())
    })
    .await;
    assert_eq!(decrypts(a1.clone(), rotated).await.unwrap(), b"cluster");

    a0.update_primary_region()
        .key_id(&id)
        .primary_region(OTHER_REGION)
        .send()
        .await
        .unwrap();
    let primary_region = |kms: aws_sdk_kms::Client| {
        let id = id.clone();
        async move {
            let m = describe(&kms, &id).await;
            let region = m
                .multi_region_configuration()
                .and_then(|c| c.primary_key())
                .and_then(|p| p.region())
                .unwrap_or_default()
                .to_owned();
            if region == OTHER_REGION {
                Ok(Vec::new())
            } else {
                Err(region)
            }
        }
    };
    binds(
        "the new primary Region binds the other node",
        Ok(Vec::new()),
        || primary_region(a1.clone()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_node_serves_any_key_and_changes_bind_every_node_at_once() {
    let pg = common::pg::shared();
    let url = pg.create_database();
    let dir = TestDir::new();
    let nodes = start_nodes(&dir, &url, 3, &[]);
    let admin = Creds::admin();

    // One inventory: made on node 0, used on 1 and 2, listed everywhere.
    let key_id = new_key(&nodes[0]).await;
    let ct = encrypt(&nodes[1], &admin, &key_id).await.expect("node 1");
    let pt = nodes[2]
        .client()
        .decrypt()
        .ciphertext_blob(Blob::new(ct))
        .send()
        .await
        .expect("node 2 decrypts node 1's ciphertext");
    assert_eq!(pt.plaintext.unwrap().into_inner(), b"cluster");
    for n in &nodes {
        let keys = n.client().list_keys().send().await.unwrap();
        assert!(keys.keys().iter().any(|k| k.key_id() == Some(&key_id)));
    }
    nodes[2]
        .client()
        .create_alias()
        .alias_name("alias/cluster")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    encrypt(&nodes[0], &admin, "alias/cluster")
        .await
        .expect("alias made on node 2, used on node 0");

    // Warm every node's caches, then disable on node 1: node 2 refuses on the next request.
    for n in &nodes {
        encrypt(n, &admin, &key_id).await.unwrap();
    }
    nodes[1]
        .client()
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    for n in &nodes {
        binds(
            "a disabled key is refused by every node",
            Err("DisabledException".into()),
            || encrypt(n, &admin, &key_id),
        )
        .await;
    }
    nodes[0]
        .client()
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    for n in &nodes {
        binds("enabled again", Ok(Vec::new()), || {
            encrypt(n, &admin, &key_id)
        })
        .await;
    }

    // A grant made on node 0 works on node 1; revoked on node 2, refused on node 1 at once.
    let (user_arn, user) = dir.user("grantee");
    assert_eq!(
        encrypt(&nodes[1], &user, &key_id).await,
        Err("AccessDeniedException".into())
    );
    let grant = nodes[0]
        .client()
        .create_grant()
        .key_id(&key_id)
        .grantee_principal(&user_arn)
        .operations(aws_sdk_kms::types::GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    binds(
        "a grant from node 0 is honoured by node 1",
        Ok(Vec::new()),
        || encrypt(&nodes[1], &user, &key_id),
    )
    .await;
    nodes[2]
        .client()
        .revoke_grant()
        .key_id(&key_id)
        .grant_id(grant.grant_id.unwrap())
        .send()
        .await
        .unwrap();
    binds(
        "revoked on node 2, refused on node 1",
        Err("AccessDeniedException".into()),
        || encrypt(&nodes[1], &user, &key_id),
    )
    .await;

    // A key policy change on node 2 binds node 0 at once.
    let (reader_arn, reader) = dir.user("reader");
    let policy = |allow_reader: bool| {
        let mut statements = vec![serde_json::json!({
            "Sid": "root", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:*", "Resource": "*"
        })];
        if allow_reader {
            statements.push(serde_json::json!({
                "Sid": "reader", "Effect": "Allow",
                "Principal": {"AWS": reader_arn},
                "Action": "kms:Encrypt", "Resource": "*"
            }));
        }
        serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    };
    nodes[2]
        .client()
        .put_key_policy()
        .key_id(&key_id)
        .policy(policy(true))
        .send()
        .await
        .unwrap();
    encrypt(&nodes[0], &reader, &key_id)
        .await
        .expect("allowed by the policy set on node 2");
    nodes[2]
        .client()
        .put_key_policy()
        .key_id(&key_id)
        .policy(policy(false))
        .send()
        .await
        .unwrap();
    binds(
        "the narrowed policy binds node 0",
        Err("AccessDeniedException".into()),
        || encrypt(&nodes[0], &reader, &key_id),
    )
    .await;

    // An identity policy and its removal (admin CLI: another process on the database).
    let (writer_arn, writer) = dir.user("writer");
    dir.attach(
        &writer_arn,
        "enc",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}"#,
    );
    // The default key policy delegates to IAM, which the policy above now grants.
    let other = new_key(&nodes[1]).await;
    encrypt(&nodes[2], &writer, &other)
        .await
        .expect("identity policy honoured");
    dir.admin(&[
        "delete-identity-policy",
        "--principal",
        &writer_arn,
        "--name",
        "enc",
    ]);
    binds(
        "identity policy removal binds node 2",
        Err("AccessDeniedException".into()),
        || encrypt(&nodes[2], &writer, &other),
    )
    .await;

    // An access key deleted through the admin CLI stops working on every node at once.
    encrypt(&nodes[0], &user, &key_id).await.ok();
    dir.admin(&["delete-access-key", "--access-key-id", &user.access_key_id]);
    for n in &nodes {
        binds(
            "a deleted access key stops working",
            Err("UnrecognizedClientException".into()),
            || encrypt(n, &user, &key_id),
        )
        .await;
    }

    // Scheduled deletion on node 1: node 0 sees PendingDeletion and refuses at once.
    nodes[1]
        .client()
        .schedule_key_deletion()
        .key_id(&other)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let d = nodes[0]
        .client()
        .describe_key()
        .key_id(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.key_metadata.unwrap().key_state,
        Some(KeyState::PendingDeletion)
    );
    binds(
        "a key pending deletion is refused",
        Err("KMSInvalidStateException".into()),
        || encrypt(&nodes[2], &admin, &other),
    )
    .await;
}

/// What a load client saw answered with 200, to be checked after the loss of a node.
#[derive(Default)]
struct Acked {
    ciphertexts: Vec<Vec<u8>>,
    keys: Vec<String>,
    aliases: Vec<(String, String)>,
    /// Requests that failed on one node and were then answered by another.
    retried: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_a_node_under_load_loses_nothing() {
    let pg = common::pg::shared();
    let url = pg.create_database();
    let dir = TestDir::new();
    let nodes = start_nodes(&dir, &url, 3, &[]);
    let admin = Creds::admin();
    let key_id = new_key(&nodes[0]).await;

    // Mixed load through every node: Encrypt, CreateKey, CreateAlias. A client whose node
    // fails moves to the next node and retries there (as behind a load balancer).
    let clients: Vec<aws_sdk_kms::Client> = nodes.iter().map(|n| n.client()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for start in 0..clients.len() {
        let clients = clients.clone();
        let stop = stop.clone();
        let key_id = key_id.clone();
        load.push(tokio::spawn(async move {
            let mut acked = Acked::default();
            let mut at = start;
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let mut tries = 0;
                loop {
                    let c = &clients[at % clients.len()];
                    let done = match i % 10 {
                        0 => c
                            .create_key()
                            .send()
                            .await
                            .map(|k| {
                                acked.keys.push(k.key_metadata.unwrap().key_id);
                            })
                            .map_err(|e| code(&e)),
                        5 if !acked.keys.is_empty() => {
                            let target = acked.keys[acked.keys.len() - 1].clone();
                            let name = format!("alias/load-{start}-{i}");
                            c.create_alias()
                                .alias_name(&name)
                                .target_key_id(&target)
                                .send()
                                .await
                                .map(|_| acked.aliases.push((name, target)))
                                .map_err(|e| code(&e))
                        }
                        _ => c
                            .encrypt()
                            .key_id(&key_id)
                            .plaintext(Blob::new(format!("message {start}-{i}").into_bytes()))
                            .send()
                            .await
                            .map(|r| {
                                acked
                                    .ciphertexts
                                    .push(r.ciphertext_blob.unwrap().into_inner())
                            })
                            .map_err(|e| code(&e)),
                    };
                    match done {
                        Ok(()) => {
                            if tries > 0 {
                                acked.retried += 1;
                            }
                            break;
                        }
                        // A retried CreateAlias may have been committed by the lost node.
                        Err(e) if e == "AlreadyExistsException" && tries > 0 => break,
                        Err(_) => {
                            tries += 1;
                            assert!(tries < 20, "client {start} could not finish a request");
                            at += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut nodes = nodes;
    nodes.remove(1).kill(); // SIGKILL, mid-request
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Acked::default();
    for t in load {
        let mut a = t.await.unwrap();
        all.ciphertexts.append(&mut a.ciphertexts);
        all.keys.append(&mut a.keys);
        all.aliases.append(&mut a.aliases);
        all.retried += a.retried;
    }
    assert!(!all.keys.is_empty() && !all.aliases.is_empty() && !all.ciphertexts.is_empty());
    let survivors = nodes;
    // Every answered write is there, on every survivor. (A node that cannot find a fresh
    // object in its view of the token reloads the library: see ARCHITECTURE.md.)
    for (j, ct) in all.ciphertexts.iter().enumerate().step_by(7) {
        let n = &survivors[j % survivors.len()];
        let pt = n
            .client()
            .decrypt()
            .ciphertext_blob(Blob::new(ct.clone()))
            .send()
            .await
            .expect("an answered Encrypt decrypts");
        assert!(pt.plaintext.unwrap().into_inner().starts_with(b"message "));
    }
    for (n, k) in survivors.iter().cycle().zip(&all.keys) {
        encrypt(n, &admin, k)
            .await
            .unwrap_or_else(|e| panic!("key {k} answered before the loss: {e}"));
    }
    for (n, (alias, target)) in survivors.iter().cycle().zip(&all.aliases) {
        let d = n
            .client()
            .describe_key()
            .key_id(alias)
            .send()
            .await
            .unwrap();
        assert_eq!(&d.key_metadata.unwrap().key_id, target, "{alias}");
    }
    // A replacement node joins and serves the same inventory.
    let replacement = start_node(&dir, 3, &[]);
    encrypt(&replacement, &admin, &key_id)
        .await
        .expect("the replacement serves the inventory");
    eprintln!(
        "acknowledged: {} encrypts, {} keys, {} aliases; {} requests retried on another node",
        all.ciphertexts.len(),
        all.keys.len(),
        all.aliases.len(),
        all.retried
    );
}

/// The node that logged holding the scheduler lease most recently, with its fence.
fn lease_holders(nodes: &[&Server]) -> Vec<(usize, i64)> {
    let mut v = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        // Drop the log's colour codes (ESC [ … m).
        let mut log = String::new();
        let mut chars = n.log().chars().collect::<Vec<_>>().into_iter().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                log.push(c);
            }
        }
        for line in log.lines() {
            if line.contains("scheduler lease taken") {
                if let Some(f) = line
                    .split("fence=")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|d| d.parse().ok())
                {
                    v.push((i, f));
                }
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn singleton_work_runs_on_one_node_and_fails_over() {
    let pg = common::pg::shared();
    let url = pg.create_database();
    let dir = TestDir::new();
    let mut nodes = start_nodes(
        &dir,
        &url,
        3,
        &[
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "1"),
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
        ],
    );
    // Scheduled work found due by every node at once is still done once: the deletion claim.
    let key_id = new_key(&nodes[0]).await;
    nodes[0]
        .client()
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let reports: Vec<serde_json::Value> = std::thread::scope(|s| {
        let hs: Vec<_> = nodes
            .iter()
            .map(|n| s.spawn(move || advance(n, 8 * 86_400)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let deleted: i64 = reports
        .iter()
        .map(|r| r["report"]["deleted"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(deleted, 1, "one node deleted the key: {reports:?}");

    // The periodic scheduler: one lease holder at a time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let holder = loop {
        let refs: Vec<&Server> = nodes.iter().collect();
        let h = lease_holders(&refs);
        if !h.is_empty() {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "no node took the scheduler lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refs: Vec<&Server> = nodes.iter().collect();
    let again = lease_holders(&refs);
    assert_eq!(
        again, holder,
        "nobody else took the lease while it was held"
    );
    assert_eq!(holder.len(), 1);
    let (first, fence) = holder[0];
    // Its holder dies: another node takes over once the lease lapses, with a higher fence.
    nodes.remove(first).kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refs: Vec<&Server> = nodes.iter().collect();
        let h = lease_holders(&refs);
        if let Some(&(_, f)) = h.first() {
            assert!(f > fence, "new fence {f} after {fence}");
            assert_eq!(h.len(), 1);
            break;
        }
        assert!(Instant::now() < deadline, "no node took over the lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_an_error_never_a_wrong_answer_and_heals() {
    let mut pg = PgServer::start();
    let url = pg.create_database();
    let dir = TestDir::new();
    let nodes = start_nodes(
        &dir,
        &url,
        2,
        &[
            ("KMS_BRIDGE_DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
            ("KMS_BRIDGE_DATABASE_STATEMENT_TIMEOUT_MS", "1000"),
        ],
    );
    let admin = Creds::admin();
    let key_id = new_key(&nodes[0]).await;
    for n in &nodes {
        encrypt(n, &admin, &key_id).await.unwrap();
        let r = http_get(n.metrics_addr.as_ref().unwrap(), "/readyz");
        assert_eq!(r.status, 200);
    }
    pg.halt();
    for n in &nodes {
        let r = http_get(n.metrics_addr.as_ref().unwrap(), "/readyz");
        assert_eq!(r.status, 503);
        // Nothing can change while the database is down, so an answer from what the node
        // held when it went down is still right; once the node knows it may miss changes
        // (listener down) or its entries age out, it answers with an error.
        let deadline = Instant::now() + Duration::from_secs(12);
        let e = loop {
            match encrypt(n, &admin, &key_id).await {
                Ok(_) => {
                    assert!(Instant::now() < deadline, "still answering from memory");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => break e,
            }
        };
        assert!(
            e == "DependencyTimeoutException" || e == "KMSInternalException",
            "during the outage: {e}"
        );
    }
    let d = nodes[1].client().disable_key().key_id(&key_id).send().await;
    assert!(d.is_err(), "no write is acknowledged without the database");
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in &nodes {
        loop {
            match encrypt(n, &admin, &key_id).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "node did not recover: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // Ready again once it hears the other nodes again (the listener reconnects).
        while http_get(n.metrics_addr.as_ref().unwrap(), "/readyz").status != 200 {
            assert!(Instant::now() < deadline, "node not ready again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // After the outage, changes still bind every node at once.
    nodes[0]
        .client()
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    binds(
        "after the outage, a disabled key is refused",
        Err("DisabledException".into()),
        || encrypt(&nodes[1], &admin, &key_id),
    )
    .await;
}
