#!/usr/bin/env bash
# Install what is missing and run every test: formatting, lints, unit tests, integration
# tests against real SoftHSM tokens (tmpfs) through the AWS SDK for Rust and the AWS CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages
ensure_postgres
ensure_awscli "$root/.venv"
export KMS_BRIDGE_AWS_CLI="$root/.venv/bin/aws"

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
