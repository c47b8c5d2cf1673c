#!/usr/bin/env bash
# The AWS CLI against kms-bridge: a custom key store on a second SoftHSM token.
# Needs: AWS, ENDPOINT, AWS_* credentials, WORK, CLUSTER (token label), CLUSTER_PIN.
set -euo pipefail
cd "$WORK"
kms() { "$AWS" kms --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' > anchor.pem
id=$(kms create-custom-key-store --custom-key-store-name cli-store --cloud-hsm-cluster-id "$CLUSTER" \
  --trust-anchor-certificate file://anchor.pem --key-store-password "$CLUSTER_PIN" \
  --query CustomKeyStoreId --output text)
[[ $id == cks-* ]] || fail "create-custom-key-store returned '$id'"
kms connect-custom-key-store --custom-key-store-id "$id" >/dev/null
state=$(kms describe-custom-key-stores --custom-key-store-id "$id" --query 'CustomKeyStores[0].ConnectionState' --output text)
[ "$state" = CONNECTED ] || fail "state $state"
key=$(kms create-key --custom-key-store-id "$id" --origin AWS_CLOUDHSM --query KeyMetadata.KeyId --output text)
cluster=$(kms describe-key --key-id "$key" --query KeyMetadata.CloudHsmClusterId --output text)
[ "$cluster" = "$CLUSTER" ] || fail "CloudHsmClusterId $cluster"
printf 'stored in the second token' > p.txt
kms encrypt --key-id "$key" --plaintext fileb://p.txt --query CiphertextBlob --output text | base64 -d > c.bin
kms decrypt --ciphertext-blob fileb://c.bin --query Plaintext --output text | base64 -d > back.txt
cmp p.txt back.txt || fail "round trip"
kms disconnect-custom-key-store --custom-key-store-id "$id" >/dev/null
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.KeyState --output text)" = Unavailable ] || fail "not Unavailable"
if kms decrypt --ciphertext-blob fileb://c.bin >/dev/null 2>err.txt; then fail "decrypt while disconnected"; fi
grep -q KMSInvalidStateException err.txt || fail "expected KMSInvalidStateException: $(cat err.txt)"
echo "CLI OK"
