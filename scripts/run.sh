#!/usr/bin/env bash
# Start kms-bridge in dev mode: installs what is missing, creates a dev token and dev
# credentials on first run, builds (release) and serves.
#   KMS_BRIDGE_LISTEN    listen address (default 127.0.0.1:4599)
#   KMS_BRIDGE_DATA_DIR  token, database and credentials (default ./data)
#   KMS_BRIDGE_DEV_TOKEN softhsm (default) or kryoptic: which PKCS#11 token the dev server uses
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages

listen=${KMS_BRIDGE_LISTEN:-127.0.0.1:4599}
data_dir=${KMS_BRIDGE_DATA_DIR:-$root/data}
mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
region=${AWS_DEFAULT_REGION:-us-east-1}

dev_token=${KMS_BRIDGE_DEV_TOKEN:-softhsm}
case "$dev_token" in
  softhsm)
    softhsm/init-token.sh "$data_dir" kms-bridge-dev
    export SOFTHSM2_CONF="$data_dir/softhsm2.conf"
    export KMS_BRIDGE_TOKEN__MODULE=${KMS_BRIDGE_TOKEN__MODULE:-/usr/lib/softhsm/libsofthsm2.so}
    ;;
  kryoptic)
    ensure_kryoptic
    softhsm/init-kryoptic.sh "$KMS_BRIDGE_KRYOPTIC_MODULE" "$data_dir" kms-bridge-dev
    export KRYOPTIC_CONF="$data_dir/kryoptic.conf"
    export KMS_BRIDGE_TOKEN__MODULE="$KMS_BRIDGE_KRYOPTIC_MODULE"
    ;;
  *)
    echo "KMS_BRIDGE_DEV_TOKEN=$dev_token: softhsm or kryoptic" >&2
    exit 2
    ;;
esac

# Dev credentials: generated on first run, kept afterwards.
creds="$data_dir/dev-credentials.env"
host=${listen%:*}
port=${listen##*:}
case "$host" in 0.0.0.0|"["*|::) host=127.0.0.1 ;; esac
endpoint="http://$host:$port"
dev_credentials "$creds" "$endpoint" "$region"

cargo build --release --quiet

echo "kms-bridge dev server"
echo "  endpoint:    $endpoint"
echo "  credentials: $creds (source it, then: aws kms list-keys)"
echo "  AWS_ACCESS_KEY_ID=$akid"
# The secret is shown once, when it is made; afterwards it is only in the credentials file.
if [ "$creds_new" = 1 ]; then
  echo "  AWS_SECRET_ACCESS_KEY=$secret"
fi
echo "  AWS_DEFAULT_REGION=$region"
echo "  token:       $dev_token ($KMS_BRIDGE_TOKEN__MODULE)"
echo "  console:     $endpoint/console/ (sign in with the access key above)"

export KMS_BRIDGE_LISTEN="$listen"
export KMS_BRIDGE_DATA_DIR="$data_dir"
export KMS_BRIDGE_TOKEN__LABEL=kms-bridge-dev
export KMS_BRIDGE_TOKEN__PIN_FILE="$data_dir/token-pin"
export KMS_BRIDGE_BOOTSTRAP_CREDENTIALS="$creds"
export KMS_BRIDGE_REGIONS="${KMS_BRIDGE_REGIONS:-$region}"
exec "$root/target/release/kms-bridge" serve
