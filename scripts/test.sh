#!/usr/bin/env bash
# Install what is missing and run every test: formatting, lints, unit tests, integration
# tests against real SoftHSM tokens (tmpfs) through the AWS SDK for Rust and the AWS CLI, and
# the web console in headless Chromium (Playwright for Python).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages
ensure_postgres
ensure_awscli "$root/.venv"
ensure_browser "$root/.venv"
export KMS_BRIDGE_AWS_CLI="$root/.venv/bin/aws"
export KMS_BRIDGE_PYTHON="$root/.venv/bin/python"

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
