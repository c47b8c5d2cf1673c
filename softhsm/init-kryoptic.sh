#!/usr/bin/env bash
# Create a Kryoptic token for kms-bridge under DATA_DIR, once (the sibling of init-token.sh).
#   softhsm/init-kryoptic.sh MODULE DATA_DIR [LABEL]
# MODULE is libkryoptic_pkcs11.so (scripts/lib.sh's ensure_kryoptic builds it). Writes
# DATA_DIR/kryoptic.conf (one slot, its store DATA_DIR/tokens/kryoptic.sql), DATA_DIR/token-pin
# and DATA_DIR/token-so-pin (mode 0600, random). Re-running it with an existing token changes
# nothing. Processes find the token with KRYOPTIC_CONF=DATA_DIR/kryoptic.conf.
set -euo pipefail
module=${1:?usage: init-kryoptic.sh MODULE DATA_DIR [LABEL]}
data_dir=${2:?usage: init-kryoptic.sh MODULE DATA_DIR [LABEL]}
label=${3:-kms-bridge}
mkdir -p "$data_dir/tokens"
data_dir=$(cd "$data_dir" && pwd)
conf="$data_dir/kryoptic.conf"
if [ ! -f "$conf" ]; then
  printf '[[slots]]\nslot = 1\ndbtype = "sqlite"\ndbargs = "%s"\n' "$data_dir/tokens/kryoptic.sql" > "$conf"
fi
export KRYOPTIC_CONF="$conf"
if pkcs11-tool --module "$module" --list-token-slots 2>/dev/null |
  grep -Eq "token label +: $label[[:space:]]*$"; then
  exit 0
fi
umask 077
pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
pkcs11-tool --module "$module" --slot 1 --init-token --label "$label" --so-pin "$so_pin" >/dev/null
pkcs11-tool --module "$module" --slot 1 --login --login-type so --so-pin "$so_pin" \
  --init-pin --pin "$pin" >/dev/null
printf '%s\n' "$pin" > "$data_dir/token-pin"
printf '%s\n' "$so_pin" > "$data_dir/token-so-pin"
echo "created Kryoptic token '$label' in $data_dir/tokens"
