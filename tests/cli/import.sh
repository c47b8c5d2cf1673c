#!/usr/bin/env bash
# Bring your own key with the AWS CLI and OpenSSL, as the AWS documentation scripts it:
# create-key --origin EXTERNAL → get-parameters-for-import → wrap 32 random bytes with
# RSA-OAEP (and with RSA-OAEP + AES key wrap with padding) → import-key-material →
# encrypt/decrypt; delete-imported-key-material and re-import of the same material; a second
# material (--import-type NEW_KEY_MATERIAL) made current by rotate-key-on-demand, both
# decrypting, list-key-rotations, one deleted by --key-material-id and imported again. Then
# asymmetric keys: an openssl-made EC and RSA private key (DER PKCS#8) wrapped with
# RSA_AES_KEY_WRAP_SHA_1, imported, and used with sign/verify against openssl.
# With OAEP_SHA256=1 (a token with RSA-OAEP SHA-256, such as Kryoptic) every step uses AWS's
# recommended RSAES_OAEP_SHA_256 and RSA_AES_KEY_WRAP_SHA_256 instead; without, they are refused.
# Needs: AWS (path of the aws CLI), ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION, WORK (scratch directory).
set -euo pipefail
cd "$WORK"
kms() { "$AWS" kms --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
hex() { od -An -tx1 "$1" | tr -d ' \n'; }
if [ "${OAEP_SHA256:-0}" = 1 ]; then md=sha256 sfx=SHA_256; else md=sha1 sfx=SHA_1; fi

params() { # key-id algorithm → PublicKey.bin, ImportToken.bin
  # A newer call supersedes older parameters: take both from one response.
  kms get-parameters-for-import --key-id "$1" --wrapping-algorithm "$2" \
    --wrapping-key-spec RSA_2048 --output json > params.json
  python3 -c 'import json,base64; d=json.load(open("params.json")); open("PublicKey.bin","wb").write(base64.b64decode(d["PublicKey"])); open("ImportToken.bin","wb").write(base64.b64decode(d["ImportToken"]))'
}

# --- RSAES_OAEP_SHA_1 (or _256) -------------------------------------------------------------
key=$(kms create-key --origin EXTERNAL --description "byok" --query KeyMetadata.KeyId --output text)
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.[KeyState,Origin] --output text)" = \
  "PendingImport	EXTERNAL" ] || fail "new EXTERNAL key is not PendingImport"

params "$key" "RSAES_OAEP_$sfx"
openssl rand -out PlaintextKeyMaterial.bin 32
openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin \
  -inkey PublicKey.bin -keyform DER -pubin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md"
kms import-key-material --key-id "$key" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.[KeyState,ExpirationModel] --output text)" = \
  "Enabled	KEY_MATERIAL_DOES_NOT_EXPIRE" ] || fail "imported key is not Enabled"

printf 'bring your own key' > plain.txt
kms encrypt --key-id "$key" --plaintext fileb://plain.txt --query CiphertextBlob --output text \
  | base64 -d > blob.bin
kms decrypt --ciphertext-blob fileb://blob.bin --query Plaintext --output text | base64 -d > back.txt
cmp plain.txt back.txt || fail "decrypt with imported material"

# Delete the material; only the same material can come back.
kms delete-imported-key-material --key-id "$key" >/dev/null
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.KeyState --output text)" = PendingImport ] \
  || fail "delete-imported-key-material did not make the key PendingImport"
if kms decrypt --ciphertext-blob fileb://blob.bin >/dev/null 2>err.txt; then
  fail "decrypt without material succeeded"
fi
grep -q KMSInvalidStateException err.txt || fail "expected KMSInvalidStateException: $(cat err.txt)"
params "$key" "RSAES_OAEP_$sfx"
openssl rand -out Other.bin 32
openssl pkeyutl -encrypt -in Other.bin -out OtherWrapped.bin -inkey PublicKey.bin -keyform DER \
  -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md"
if kms import-key-material --key-id "$key" --encrypted-key-material fileb://OtherWrapped.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE \
  >/dev/null 2>err.txt; then
  fail "import of different material succeeded"
fi
grep -q IncorrectKeyMaterialException err.txt || fail "expected IncorrectKeyMaterialException: $(cat err.txt)"
openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin \
  -inkey PublicKey.bin -keyform DER -pubin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md"
valid_to=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
kms import-key-material --key-id "$key" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_EXPIRES \
  --valid-to "$valid_to" >/dev/null
kms decrypt --ciphertext-blob fileb://blob.bin --query Plaintext --output text | base64 -d > back.txt
cmp plain.txt back.txt || fail "decrypt after re-import"
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.ExpirationModel --output text)" = \
  KEY_MATERIAL_EXPIRES ] || fail "expiration model not shown"

# --- RSA_AES_KEY_WRAP_SHA_1 (or _256) -------------------------------------------------------
key2=$(kms create-key --origin EXTERNAL --query KeyMetadata.KeyId --output text)
params "$key2" "RSA_AES_KEY_WRAP_$sfx"
openssl rand -out aes-key.bin 32
openssl enc -id-aes256-wrap-pad -K "$(hex aes-key.bin)" -iv A65959A6 \
  -in PlaintextKeyMaterial.bin -out key-material-wrapped.bin
openssl pkeyutl -encrypt -in aes-key.bin -out aes-key-wrapped.bin -inkey PublicKey.bin \
  -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" \
  -pkeyopt "rsa_mgf1_md:$md"
cat aes-key-wrapped.bin key-material-wrapped.bin > EncryptedKeyMaterial.bin
rm -f aes-key.bin
kms import-key-material --key-id "$key2" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
kms encrypt --key-id "$key2" --plaintext fileb://plain.txt --query CiphertextBlob --output text \
  | base64 -d > blob2.bin
kms decrypt --ciphertext-blob fileb://blob2.bin --query Plaintext --output text | base64 -d > back.txt
cmp plain.txt back.txt || fail "decrypt with material imported by RSA_AES_KEY_WRAP_$sfx"

# A wrapping algorithm the token cannot do is refused, naming what works.
if [ "$sfx" = SHA_1 ] && kms get-parameters-for-import --key-id "$key2" --wrapping-algorithm RSAES_OAEP_SHA_256 \
  --wrapping-key-spec RSA_2048 >/dev/null 2>err.txt; then
  fail "RSAES_OAEP_SHA_256 accepted by a token without OAEP SHA-256"
fi
if [ "$sfx" = SHA_1 ]; then
  grep -q UnsupportedOperationException err.txt || fail "expected UnsupportedOperationException: $(cat err.txt)"
  grep -q RSAES_OAEP_SHA_1 err.txt || fail "the error does not name the supported algorithms"
fi

# --- Several key materials: new material, on-demand rotation, delete by KeyMaterialId --------
wrap_oaep() { # material file → EncryptedKeyMaterial.bin (RSAES_OAEP_$sfx, PublicKey.bin)
  openssl pkeyutl -encrypt -in "$1" -out EncryptedKeyMaterial.bin -inkey PublicKey.bin \
    -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" \
    -pkeyopt "rsa_mgf1_md:$md"
}
import_material() { # key-id material-file [import-key-material options…] → its KeyMaterialId
  local k=$1 f=$2; shift 2
  params "$k" "RSAES_OAEP_$sfx"
  wrap_oaep "$f"
  kms import-key-material --key-id "$k" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
    --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE "$@" \
    --query KeyMaterialId --output text
}
mkey=$(kms create-key --origin EXTERNAL --query KeyMetadata.KeyId --output text)
marn=$(kms describe-key --key-id "$mkey" --query KeyMetadata.Arn --output text)
openssl rand -out MaterialOne.bin 32
openssl rand -out MaterialTwo.bin 32
one=$(import_material "$mkey" MaterialOne.bin)
[[ "$one" =~ ^[0-9a-f]{64}$ ]] || fail "KeyMaterialId is not 64 lowercase hex: $one"
kms encrypt --key-id "$mkey" --plaintext fileb://plain.txt --query CiphertextBlob --output text \
  | base64 -d > blob-one.bin
if kms rotate-key-on-demand --key-id "$mkey" >/dev/null 2>err.txt; then
  fail "rotate-key-on-demand without pending material succeeded"
fi
grep -q "KMSInvalidStateException" err.txt && \
  grep -qF "No available key material pending rotation for the key: $marn." err.txt \
  || fail "expected AWS's answer to a rotation without pending material: $(cat err.txt)"
two=$(import_material "$mkey" MaterialTwo.bin --import-type NEW_KEY_MATERIAL \
  --key-material-description "second material")
[ "$two" != "$one" ] || fail "two materials with one id"
[ "$(kms list-key-rotations --key-id "$mkey" --include-key-material ALL_KEY_MATERIAL \
  --query 'Rotations[].[KeyMaterialId,KeyMaterialState,ImportState]' --output text)" = \
  "$one	CURRENT	IMPORTED
$two	PENDING_ROTATION	IMPORTED" ] || fail "list-key-rotations before the rotation"
[ "$(kms describe-key --key-id "$mkey" --query KeyMetadata.CurrentKeyMaterialId --output text)" = "$one" ] \
  || fail "pending material became current before the rotation"
# A third new material while the second waits: AWS's KMSInvalidStateException.
openssl rand -out MaterialThree.bin 32
if import_material "$mkey" MaterialThree.bin --import-type NEW_KEY_MATERIAL >/dev/null 2>err.txt; then
  fail "a second pending material was accepted"
fi
grep -q KMSInvalidStateException err.txt && \
  grep -qF "because another key material (id: $two) is pending rotation." err.txt \
  || fail "expected AWS's answer to a second pending material: $(cat err.txt)"
kms rotate-key-on-demand --key-id "$mkey" >/dev/null
[ "$(kms describe-key --key-id "$mkey" --query KeyMetadata.CurrentKeyMaterialId --output text)" = "$two" ] \
  || fail "rotation did not make the new material current"
kms encrypt --key-id "$mkey" --plaintext fileb://plain.txt --query CiphertextBlob --output text \
  | base64 -d > blob-two.bin
for n in one two; do
  out=$(kms decrypt --ciphertext-blob "fileb://blob-$n.bin" --query '[Plaintext,KeyMaterialId]' --output text)
  [ "$(cut -f1 <<<"$out" | base64 -d)" = "$(cat plain.txt)" ] || fail "blob under material $n does not decrypt"
  [ "$(cut -f2 <<<"$out")" = "${!n}" ] || fail "decrypt does not name material $n"
done
[ "$(kms list-key-rotations --key-id "$mkey" \
  --query 'Rotations[].[KeyMaterialId,KeyMaterialState,RotationType]' --output text)" = \
  "$two	CURRENT	ON_DEMAND" ] || fail "list-key-rotations after the rotation"
# Delete the first material by its id: the key waits for it; it comes back by its id.
[ "$(kms delete-imported-key-material --key-id "$mkey" --key-material-id "$one" \
  --query KeyMaterialId --output text)" = "$one" ] || fail "delete-imported-key-material by id"
[ "$(kms describe-key --key-id "$mkey" --query KeyMetadata.KeyState --output text)" = PendingImport ] \
  || fail "deleting a material the key keeps did not make it PendingImport"
[ "$(kms list-key-rotations --key-id "$mkey" --include-key-material ALL_KEY_MATERIAL \
  --query 'Rotations[0].ImportState' --output text)" = PENDING_IMPORT ] || fail "deleted material not PENDING_IMPORT"
if kms decrypt --ciphertext-blob fileb://blob-two.bin >/dev/null 2>err.txt; then
  fail "decrypt succeeded while a material is missing"
fi
grep -q KMSInvalidStateException err.txt || fail "expected KMSInvalidStateException: $(cat err.txt)"
if import_material "$mkey" MaterialTwo.bin --import-type EXISTING_KEY_MATERIAL \
  --key-material-id "$one" >/dev/null 2>err.txt; then
  fail "material imported under another material's id"
fi
grep -q IncorrectKeyMaterialException err.txt || fail "expected IncorrectKeyMaterialException: $(cat err.txt)"
[ "$(import_material "$mkey" MaterialOne.bin --import-type EXISTING_KEY_MATERIAL \
  --key-material-id "$one")" = "$one" ] || fail "re-import of the first material by its id"
[ "$(kms describe-key --key-id "$mkey" --query KeyMetadata.KeyState --output text)" = Enabled ] \
  || fail "key not Enabled with every material back"
kms decrypt --ciphertext-blob fileb://blob-one.bin --query Plaintext --output text | base64 -d > back.txt
cmp plain.txt back.txt || fail "decrypt after re-importing the first material"
rm -f MaterialOne.bin MaterialTwo.bin MaterialThree.bin

# --- Asymmetric key material: DER PKCS#8 private keys --------------------------------------------
wrap_kwp() { # PKCS#8 file → EncryptedKeyMaterial.bin (RSA_AES_KEY_WRAP_$sfx, PublicKey.bin)
  openssl rand -out aes-key.bin 32
  openssl enc -id-aes256-wrap-pad -K "$(hex aes-key.bin)" -iv A65959A6 -in "$1" \
    -out key-material-wrapped.bin
  openssl pkeyutl -encrypt -in aes-key.bin -out aes-key-wrapped.bin -inkey PublicKey.bin \
    -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" \
    -pkeyopt "rsa_mgf1_md:$md"
  cat aes-key-wrapped.bin key-material-wrapped.bin > EncryptedKeyMaterial.bin
  rm -f aes-key.bin
}
sign_and_verify() { # key-id private.der public.der signing-algorithm digest
  printf 'signed by imported key material' > msg.txt
  kms sign --key-id "$1" --message fileb://msg.txt --message-type RAW --signing-algorithm "$4" \
    --query Signature --output text | base64 -d > kms-sig.bin
  openssl dgst "-$5" -verify "$3" -keyform DER -signature kms-sig.bin msg.txt >/dev/null \
    || fail "openssl does not verify the signature of imported $4 key $1"
  openssl dgst "-$5" -sign "$2" -keyform DER -out openssl-sig.bin msg.txt
  [ "$(kms verify --key-id "$1" --message fileb://msg.txt --signature fileb://openssl-sig.bin \
    --signing-algorithm "$4" --query SignatureValid --output text)" = True ] \
    || fail "KMS does not verify an openssl signature with imported key $1"
}

for spec in ECC_NIST_P256 RSA_2048; do
  case $spec in
    ECC_NIST_P256) gen=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256); alg=ECDSA_SHA_256 ;;
    RSA_2048) gen=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048); alg=RSASSA_PKCS1_V1_5_SHA_256 ;;
  esac
  akey=$(kms create-key --origin EXTERNAL --key-spec "$spec" --key-usage SIGN_VERIFY \
    --query KeyMetadata.KeyId --output text)
  [ "$(kms describe-key --key-id "$akey" --query 'KeyMetadata.[KeyState,KeySpec]' --output text)" \
    = "PendingImport	$spec" ] || fail "new EXTERNAL $spec key is not PendingImport"
  openssl genpkey "${gen[@]}" 2>/dev/null | openssl pkcs8 -topk8 -outform der -nocrypt > private.der
  openssl pkey -inform DER -in private.der -pubout -outform DER > public.der
  params "$akey" "RSA_AES_KEY_WRAP_$sfx"
  wrap_kwp private.der
  kms import-key-material --key-id "$akey" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
    --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
  [ "$(kms describe-key --key-id "$akey" --query KeyMetadata.KeyState --output text)" = Enabled ] \
    || fail "imported $spec key is not Enabled"
  kms get-public-key --key-id "$akey" --query PublicKey --output text | base64 -d > kms-public.der
  cmp public.der kms-public.der || fail "get-public-key of imported $spec key differs from openssl's"
  sign_and_verify "$akey" private.der public.der "$alg" sha256
done

# An RSA private key is too large for RSAES_OAEP_*: only RSA_AES_KEY_WRAP_* wraps it.
if kms get-parameters-for-import --key-id "$akey" --wrapping-algorithm RSAES_OAEP_SHA_1 \
  --wrapping-key-spec RSA_4096 >/dev/null 2>err.txt; then
  fail "RSAES_OAEP_SHA_1 accepted for RSA key material"
fi
grep -q UnsupportedOperationException err.txt || fail "expected UnsupportedOperationException: $(cat err.txt)"
# Only the same private key can come back after deletion.
kms delete-imported-key-material --key-id "$akey" >/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null \
  | openssl pkcs8 -topk8 -outform der -nocrypt > other.der
params "$akey" "RSA_AES_KEY_WRAP_$sfx"
wrap_kwp other.der
if kms import-key-material --key-id "$akey" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE \
  >/dev/null 2>err.txt; then
  fail "import of another RSA private key succeeded"
fi
grep -q IncorrectKeyMaterialException err.txt || fail "expected IncorrectKeyMaterialException: $(cat err.txt)"
wrap_kwp private.der
kms import-key-material --key-id "$akey" --encrypted-key-material fileb://EncryptedKeyMaterial.bin \
  --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
sign_and_verify "$akey" private.der public.der RSASSA_PKCS1_V1_5_SHA_256 sha256

rm -f PlaintextKeyMaterial.bin Other.bin private.der other.der
echo "CLI OK"
