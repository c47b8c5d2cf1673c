#!/usr/bin/env bash
# The AWS CLI against kms-bridge: a multi-Region key, its replica in another region, a
# ciphertext crossing regions, and the primary Region moved.
# Needs: AWS, ENDPOINT, AWS_* credentials (the default region is the primary's), WORK,
# OTHER_REGION (another region the server serves).
set -euo pipefail
cd "$WORK"
kms() { "$AWS" kms --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

key=$(kms create-key --multi-region --description primary --query KeyMetadata.KeyId --output text)
[[ $key =~ ^mrk-[0-9a-f]{32}$ ]] || fail "create-key --multi-region returned '$key'"
type=$(kms describe-key --key-id "$key" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)
[ "$type" = PRIMARY ] || fail "MultiRegionKeyType $type"

state=$(kms replicate-key --key-id "$key" --replica-region "$OTHER_REGION" --description replica \
  --query ReplicaKeyMetadata.KeyState --output text)
[ "$state" = Creating ] || fail "replica state $state"
# As a client of AWS does: wait until the replica is enabled.
for _ in $(seq 1 50); do
  state=$(kms describe-key --key-id "$key" --region "$OTHER_REGION" --query KeyMetadata.KeyState --output text)
  [ "$state" = Enabled ] && break
  sleep 0.1
done
[ "$state" = Enabled ] || fail "replica never enabled: $state"

printf 'made in one region, read in another' > p.txt
kms encrypt --key-id "$key" --plaintext fileb://p.txt --query CiphertextBlob --output text | base64 -d > c.bin
kms decrypt --ciphertext-blob fileb://c.bin --region "$OTHER_REGION" --query Plaintext --output text | base64 -d > back.txt
cmp p.txt back.txt || fail "cross-region round trip"

kms update-primary-region --key-id "$key" --primary-region "$OTHER_REGION"
primary=$(kms describe-key --key-id "$key" --query KeyMetadata.MultiRegionConfiguration.PrimaryKey.Region --output text)
[ "$primary" = "$OTHER_REGION" ] || fail "primary Region $primary"
if kms replicate-key --key-id "$key" --replica-region "$OTHER_REGION" >/dev/null 2>err.txt; then
  fail "a replica replicated"
fi
grep -q UnsupportedOperationException err.txt || fail "expected UnsupportedOperationException: $(cat err.txt)"
echo "CLI OK"
