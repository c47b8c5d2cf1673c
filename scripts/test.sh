#!/usr/bin/env bash
# Install what is missing and run every test: formatting, lints, unit tests, integration
# tests against real tokens (tmpfs) through the AWS SDK for Rust and the AWS CLI, and the web
# console in headless Chromium (Playwright for Python) — the whole suite on SoftHSM2, then the
# token's part again on Kryoptic (a second PKCS#11 implementation).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages
ensure_postgres
ensure_awscli "$root/.venv"
ensure_kryoptic
ensure_browser "$root/.venv"
export KMS_BRIDGE_AWS_CLI="$root/.venv/bin/aws"
export KMS_BRIDGE_PYTHON="$root/.venv/bin/python"

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
# The doctests: among them the compile_fail proofs that a key's token objects are out of reach
# without a permit from authorization (kms/authz.rs).
cargo test --doc
# (The test build has the `test-hooks` feature — failpoints, the fuzz targets — through the
# crate's dev-dependency on itself; the release binary never has it. The fuzz smoke run
# (tests/fuzz.rs), the crash matrix (tests/crash.rs), the zeroization scan and the domain tier
# are part of `cargo test`; `scripts/fuzz.sh` is the long fuzz run.)
# Again on Kryoptic: every integration test that involves the token (the metadata store's
# conformance suite, the benchmark smoke test, the browser tests, the fuzz targets and the
# SoftHSM process-memory scan do not).
kryoptic=()
for t in tests/*.rs; do
  case $(basename "$t" .rs) in
    store_conformance | bench_smoke | console | fuzz | zeroization) ;;
    *) kryoptic+=(--test "$(basename "$t" .rs)") ;;
  esac
done
echo "the suite again, on Kryoptic ($KMS_BRIDGE_KRYOPTIC_MODULE)" >&2
KMS_BRIDGE_TEST_TOKEN=kryoptic cargo test "${kryoptic[@]}"
