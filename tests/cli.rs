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
fn aws_cli_import_workflow() {
    run_script("import.sh");
}

fn run_script(name: &str) {
    let (dir, server) = Server::start_new();
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
