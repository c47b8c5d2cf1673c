#!/usr/bin/env bash
# The long fuzz run: the property-based fuzz targets of tests/fuzz.rs (every parser of outside
# input, and the SigV4 verifier against the AWS SDK's signer) with many more cases than the
# smoke run in `cargo test`, round after round with fresh random seeds until the time is up.
#
#   scripts/fuzz.sh                      # 10 minutes, 20,000 cases per property per round
#   KMS_BRIDGE_FUZZ_SECONDS=3600 KMS_BRIDGE_FUZZ_CASES=100000 scripts/fuzz.sh
#   scripts/fuzz.sh request_bodies       # only the properties whose name contains this
#
# A failure stops the run: proptest prints the minimized input, and keeps its seed in
# tests/fuzz.proptest-regressions (replayed first by every later run, the smoke run included).
# Fix it, and pin the input as a plain test next to the property.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${KMS_BRIDGE_FUZZ_SECONDS:-600}
cases=${KMS_BRIDGE_FUZZ_CASES:-20000}
filter=${1:-}

cargo test --test fuzz --no-run --quiet
deadline=$(($(date +%s) + seconds))
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  round=$((round + 1))
  echo "fuzz round $round: $cases cases per property (until $(date -d "@$deadline" +%T))" >&2
  # Each round draws new random seeds (proptest seeds from the OS unless PROPTEST_RNG_SEED).
  PROPTEST_CASES=$cases PROPTEST_MAX_SHRINK_ITERS=100000 \
    cargo test --test fuzz --quiet -- $filter --test-threads 2
done
echo "fuzz: $round rounds, no failure" >&2
