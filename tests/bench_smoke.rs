//! CI smoke run of `kms-bridge bench`: a second per operation on two connections against a
//! real server, plus raw token ceilings. Checks that it measures and reports, never speed.

mod common;
use common::*;

use clap::Parser;
use kms_bridge::bench::{BenchArgs, Op, Outcome};
use kms_bridge::token::{Token, TokenConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_server_and_raw_ceiling() {
    let (dir, server) = Server::start_new();
    let pin_file = dir.path.join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    std::env::set_var(token_conf_var(), dir.token_conf());
    let markdown = dir.path.join("PERFORMANCE.md");
    let module = token_module();
    let args = BenchArgs::try_parse_from([
        "bench",
        "--endpoint",
        &server.endpoint,
        "--access-key-id",
        ACCESS_KEY_ID,
        "--secret-access-key",
        SECRET_ACCESS_KEY,
        "--region",
        REGION,
        "--connections",
        "2",
        "--seconds",
        "1",
        "--warmup",
        "0.2",
        "--ops",
        "encrypt-32,decrypt-4k,describe-key,sign-ecdsa-p256",
        "--token-module",
        module.to_str().unwrap(),
        "--token-label",
        TOKEN_LABEL,
        "--pin-file",
        pin_file.to_str().unwrap(),
        "--null",
        "--null-bin",
        env!("CARGO_BIN_EXE_kms-bridge"),
        "--null-audit-dir",
        dir.path.to_str().unwrap(),
    ])
    .unwrap();

    let report = kms_bridge::bench::run(&args).await.unwrap();
    let text = report.text();
    println!("{text}");

    for op in [Op::Encrypt32, Op::Decrypt4k, Op::DescribeKey] {
        let row = report.row(op).unwrap();
        let Outcome::Measured(s) = &row.outcome else {
            panic!("{op:?} was not measured:\n{text}");
        };
        assert!(s.ops > 0 && s.ops_per_sec() > 0.0, "{op:?}:\n{text}");
        assert_eq!(s.errors, 0, "{op:?}: {:?}", s.first_error);
        assert!(!s.latency_ns.is_empty() && s.ms(0.99) > 0.0);
    }
    // The raw ceiling ran for the token primitives (DescribeKey has none).
    let raw = report.row(Op::Encrypt32).unwrap().raw.clone().unwrap();
    assert!(raw.ops_per_sec > 0.0 && raw.threads == 1, "{text}");
    assert!(report.row(Op::DescribeKey).unwrap().raw.is_none());
    let ecdsa = report.row(Op::SignEcdsaP256).unwrap();
    assert!(ecdsa.raw.as_ref().unwrap().ops_per_sec > 0.0, "{text}");
    // Unsupported until the server has asymmetric keys; then it must run cleanly.
    match &ecdsa.outcome {
        Outcome::Unsupported => assert!(text.contains("unsupported (not implemented yet)")),
        Outcome::Measured(s) => assert_eq!(s.errors, 0, "{:?}", s.first_error),
        Outcome::Failed(e) => panic!("ECDSA setup failed: {e}"),
    }
    // The floor experiment: the null endpoint, then the same with an audit trail (whose
    // records `run` checks against the answers: a shortfall or a broken chain is a note).
    let names: Vec<&str> = report.floor.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["null endpoint", "null endpoint + audit"], "{text}");
    for f in &report.floor {
        let Outcome::Measured(s) = &f.outcome else {
            panic!("{} was not measured:\n{text}", f.name);
        };
        assert!(
            s.ops > 0 && s.errors == 0,
            "{}: {:?}",
            f.name,
            s.first_error
        );
        assert!(
            s.server_cpu.is_some(),
            "{}: its CPU time is measured",
            f.name
        );
    }
    assert!(text.contains("null endpoint + audit"), "{text}");
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(!report.has_errors(), "{text}");
    report.write_markdown(&markdown).unwrap();
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        md.contains("| Encrypt 32 B |") && md.contains("SoftHSM"),
        "{md}"
    );

    // The ceiling's own keys are gone from the token afterwards.
    let cfg = TokenConfig {
        module,
        label: TOKEN_LABEL.into(),
        pin: PIN.to_owned().into(),
        threads: 2,
        working_copies: 1024,
        keygen: Default::default(),
    };
    let token = tokio::task::spawn_blocking(move || Token::open(&cfg))
        .await
        .unwrap()
        .unwrap();
    let objects = token.load_objects().await.unwrap();
    assert!(
        objects
            .iter()
            .all(|o| !o.label.starts_with("kms-bridge-bench/")),
        "{objects:?}"
    );
    server.stop();
}

#[test]
fn bench_exits_non_zero_when_requests_fail() {
    let (dir, server) = Server::start_new();
    // A region the server does not serve: every request is answered 400.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-bridge"))
        .args([
            "bench",
            "--endpoint",
            &server.endpoint,
            "--region",
            "ap-south-9",
            "--ops",
            "describe-key",
            "--seconds",
            "0.2",
            "--warmup",
            "0",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env(token_conf_var(), dir.token_conf())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("InvalidSignatureException"), "{err}");
    assert!(
        !err.contains(SECRET_ACCESS_KEY),
        "the secret must not be printed"
    );
}

/// The key-count steps: create keys, then Encrypt over 10 of them and over all, with the
/// server's memory; the Markdown section lands between its markers.
#[test]
fn bench_key_count_steps_run_and_report() {
    let (dir, server) = Server::start_new();
    let keys_file = dir.path.join("keys.txt");
    let markdown = dir.path.join("PERFORMANCE.md");
    std::fs::write(&markdown, "# Performance\n\nkept text\n").unwrap();
    let bench = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kms-bridge"))
            .args(["bench", "--endpoint", &server.endpoint, "--region", REGION])
            .args(["--connections", "2"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env(token_conf_var(), dir.token_conf())
            .output()
            .unwrap()
    };
    let out = bench(&[
        "--populate",
        "12",
        "--keys-file",
        keys_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = std::fs::read_to_string(&keys_file).unwrap();
    assert_eq!(ids.lines().count(), 12, "{ids}");

    let pid = server.pid().to_string();
    let out = bench(&[
        "--scale-keys-file",
        keys_file.to_str().unwrap(),
        "--seconds",
        "0.3",
        "--warmup",
        "0.1",
        "--server-pid",
        &pid,
        "--startup-seconds",
        "0.5",
        "--markdown",
        markdown.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| 10 keys |") && stdout.contains("| 12 keys |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0.50 s") && stdout.contains(" MB / "),
        "{stdout}"
    );
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(md.starts_with("# Performance\n\nkept text"), "{md}");
    assert!(md.contains(kms_bridge::bench::scale::BEGIN_MARKER), "{md}");
    assert!(md.contains("| 12 keys |"), "{md}");
    server.stop();
}
