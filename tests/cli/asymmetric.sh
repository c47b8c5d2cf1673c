#!/usr/bin/env bash
# The AWS CLI against kms-bridge with asymmetric and HMAC keys: sign, verify, get-public-key
# (verified by openssl), RSA encryption, MACs. Same environment as symmetric.sh.
set -euo pipefail
cd "$WORK"
kms() { "$AWS" kms --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

printf 'attack at dawn' > msg.txt
signer=$(kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY \
  --query KeyMetadata.KeyId --output text)
kms sign --key-id "$signer" --message fileb://msg.txt --message-type RAW \
  --signing-algorithm ECDSA_SHA_256 --query Signature --output text | base64 -d > msg.sig
valid=$(kms verify --key-id "$signer" --message fileb://msg.txt --message-type RAW \
  --signing-algorithm ECDSA_SHA_256 --signature fileb://msg.sig --query SignatureValid --output text)
[ "$valid" = "True" ] || fail "verify answered '$valid'"
kms get-public-key --key-id "$signer" --query PublicKey --output text | base64 -d > pub.der
openssl dgst -sha256 -verify pub.der -keyform DER -signature msg.sig msg.txt | grep -q "Verified OK" \
  || fail "openssl does not verify the signature"
printf 'tampered' > other.txt
if kms verify --key-id "$signer" --message fileb://other.txt --signing-algorithm ECDSA_SHA_256 \
  --signature fileb://msg.sig >/dev/null 2>err.txt; then
  fail "verify of another message succeeded"
fi
grep -q KMSInvalidSignatureException err.txt || fail "expected KMSInvalidSignatureException: $(cat err.txt)"

rsa=$(kms create-key --key-spec RSA_2048 --key-usage ENCRYPT_DECRYPT --query KeyMetadata.KeyId --output text)
kms encrypt --key-id "$rsa" --encryption-algorithm RSAES_OAEP_SHA_256 --plaintext fileb://msg.txt \
  --query CiphertextBlob --output text | base64 -d > rsa.bin
kms decrypt --key-id "$rsa" --encryption-algorithm RSAES_OAEP_SHA_256 --ciphertext-blob fileb://rsa.bin \
  --query Plaintext --output text | base64 -d > back.txt
cmp msg.txt back.txt || fail "RSA decrypt did not return the plaintext"

mac=$(kms create-key --key-spec HMAC_256 --key-usage GENERATE_VERIFY_MAC --query KeyMetadata.KeyId --output text)
kms generate-mac --key-id "$mac" --mac-algorithm HMAC_SHA_256 --message fileb://msg.txt \
  --query Mac --output text | base64 -d > msg.mac
ok=$(kms verify-mac --key-id "$mac" --mac-algorithm HMAC_SHA_256 --message fileb://msg.txt \
  --mac fileb://msg.mac --query MacValid --output text)
[ "$ok" = "True" ] || fail "verify-mac answered '$ok'"
echo "CLI OK"
