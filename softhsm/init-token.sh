#!/usr/bin/env bash
# Create a SoftHSM2 token for kms-bridge under DATA_DIR, once.
#   softhsm/init-token.sh DATA_DIR [LABEL]
# Writes DATA_DIR/softhsm2.conf, DATA_DIR/tokens/ and DATA_DIR/token-pin (mode 0600, random
# user PIN). Re-running it with an existing token changes nothing.
set -euo pipefail
data_dir=${1:?usage: init-token.sh DATA_DIR [LABEL]}
label=${2:-kms-bridge}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$data_dir/tokens"
data_dir=$(cd "$data_dir" && pwd)
conf="$data_dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  sed "s|@TOKEN_DIR@|$data_dir/tokens|" "$here/softhsm2.conf.template" > "$conf"
fi
export SOFTHSM2_CONF="$conf"
if softhsm2-util --show-slots 2>/dev/null | grep -Eq "Label:[[:space:]]+$label[[:space:]]*$"; then
  exit 0
fi
umask 077
pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null
printf '%s\n' "$pin" > "$data_dir/token-pin"
printf '%s\n' "$so_pin" > "$data_dir/token-so-pin"
echo "created SoftHSM token '$label' in $data_dir/tokens"
