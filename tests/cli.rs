//! The AWS CLI (installed by scripts/test.sh into .venv) against a live server.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;

fn aws_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("KMS_BRIDGE_AWS_CLI") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/aws");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("aws")
}

#[test]
fn aws_cli_symmetric_workflow() {
    run_script("symmetric.sh");
}

#[test]
fn aws_cli_asymmetric_workflow() {
    run_script("asymmetric.sh");
}

#[test]
fn aws_cli_custom_key_store_workflow() {
    run_script_with(
        "keystores.sh",
        &[
            ("CLUSTER", "cluster-clitesttoken"),
            ("CLUSTER_PIN", "cli-store-pin"),
        ],
    );
}

#[test]
fn aws_cli_import_workflow() {
    // AWS's SHA-256 wrapping algorithms where the token has RSA-OAEP with SHA-256.
    let sha256 = if token_has_oaep_sha256() { "1" } else { "0" };
    run_script_with("import.sh", &[("OAEP_SHA256", sha256)]);
}

#[test]
fn aws_cli_multi_region_workflow() {
    run_script_with("multi_region.sh", &[("OTHER_REGION", OTHER_REGION)]);
}

fn run_script(name: &str) {
    run_script_with(name, &[]);
}

/// Run a CLI script; `CLUSTER`/`CLUSTER_PIN` in `env` also create that extra token first.
fn run_script_with(name: &str, env: &[(&str, &str)]) {
    let dir = TestDir::new();
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    if let (Some(label), Some(pin)) = (get("CLUSTER"), get("CLUSTER_PIN")) {
        dir.add_token(label, pin);
    }
    let server = Server::start(&dir, &[]);
    let work = dir.path.join("cli");
    std::fs::create_dir_all(&work).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli")
        .join(name);
    let out = Command::new("bash")
        .arg(script)
        .env("AWS", aws_cli())
        .env("ENDPOINT", &server.endpoint)
        .env("WORK", &work)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KMS")
        .env_remove("AWS_PROFILE")
        .envs(env.iter().copied())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CLI OK"),
        "AWS CLI workflow failed (is the AWS CLI installed? scripts/test.sh installs it)\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        server.log()
    );
}
