#!/usr/bin/env bash
# The AWS CLI against kms-bridge: create-key, encrypt/decrypt, re-encrypt, rotation, data keys,
# and envelope encryption of a 1 MiB file with OpenSSL.
# Needs: AWS (path of the aws CLI), ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION, WORK (scratch directory).
set -euo pipefail
cd "$WORK"
kms() { "$AWS" kms --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

key=$(kms create-key --description "cli test" --query KeyMetadata.KeyId --output text)
[[ $key =~ ^[0-9a-f-]{36}$ ]] || fail "create-key returned '$key'"
key2=$(kms create-key --query KeyMetadata.KeyId --output text)

printf 'attack at dawn' > plain.txt
kms encrypt --key-id "$key" --plaintext fileb://plain.txt --encryption-context purpose=cli \
  --query CiphertextBlob --output text | base64 -d > blob.bin
kms decrypt --ciphertext-blob fileb://blob.bin --encryption-context purpose=cli \
  --query Plaintext --output text | base64 -d > back.txt
cmp plain.txt back.txt || fail "decrypt did not return the plaintext"
if kms decrypt --ciphertext-blob fileb://blob.bin >/dev/null 2>err.txt; then
  fail "decrypt without the encryption context succeeded"
fi
grep -q InvalidCiphertextException err.txt || fail "expected InvalidCiphertextException: $(cat err.txt)"

kms re-encrypt --ciphertext-blob fileb://blob.bin --source-encryption-context purpose=cli \
  --destination-key-id "$key2" --query CiphertextBlob --output text | base64 -d > blob2.bin
out=$(kms decrypt --ciphertext-blob fileb://blob2.bin --query '[KeyId,Plaintext]' --output text)
[[ $out == *"$key2"* ]] || fail "re-encrypted blob names '$out'"
[ "$(echo "$out" | awk '{print $2}' | base64 -d)" = "attack at dawn" ] || fail "re-encrypt lost the plaintext"

kms enable-key-rotation --key-id "$key"
[ "$(kms get-key-rotation-status --key-id "$key" --query KeyRotationEnabled --output text)" = "True" ] \
  || fail "rotation not enabled"

# The endpoint from the environment (as dev-credentials.env sets it) works too.
AWS_ENDPOINT_URL_KMS="$ENDPOINT" "$AWS" kms describe-key --key-id "$key" --query KeyMetadata.KeyState \
  --output text | grep -qx Enabled || fail "AWS_ENDPOINT_URL_KMS not honoured"

# Envelope encryption of 1 MiB with a data key.
head -c 1048576 /dev/urandom > big.bin
kms generate-data-key --key-id "$key" --key-spec AES_256 --output json > dk.json
python3 -c 'import json,base64,sys; d=json.load(open("dk.json")); open("dk.key","wb").write(base64.b64decode(d["Plaintext"])); open("dk.blob","wb").write(base64.b64decode(d["CiphertextBlob"]))'
[ "$(stat -c %s dk.key)" = 32 ] || fail "data key is not 32 bytes"
iv=$(openssl rand -hex 16)
openssl enc -aes-256-cbc -K "$(od -An -tx1 dk.key | tr -d ' \n')" -iv "$iv" -in big.bin -out big.enc
rm -f dk.key
kms decrypt --ciphertext-blob fileb://dk.blob --query Plaintext --output text | base64 -d > dk2.key
openssl enc -d -aes-256-cbc -K "$(od -An -tx1 dk2.key | tr -d ' \n')" -iv "$iv" -in big.enc -out big.out
cmp big.bin big.out || fail "envelope round trip changed the file"

echo "CLI OK"
