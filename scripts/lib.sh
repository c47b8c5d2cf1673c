# Shared by scripts/run.sh and scripts/test.sh: install what is missing, idempotently.
# shellcheck shell=bash

_apt_updated=0
_apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ "$_apt_updated" -eq 0 ]; then
    $sudo apt-get update -qq
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# SoftHSM2, OpenSC (pkcs11-tool) and OpenSSL from Debian's packages.
ensure_packages() {
  local need=()
  [ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
  command -v pkcs11-tool >/dev/null || need+=(opensc)
  command -v openssl >/dev/null || need+=(openssl)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]} (apt-get)" >&2
    _apt_install "${need[@]}"
  fi
}

# The AWS CLI in a project-local virtualenv (.venv), from PyPI.
ensure_awscli() {
  local venv="$1"
  # Runs, not just exists: a venv moved with its checkout keeps dead interpreter paths.
  if "$venv/bin/aws" --version >/dev/null 2>&1; then return 0; fi
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    _apt_install python3-venv
    python3 -m venv "$venv"
  fi
  echo "installing awscli into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check awscli
}

# PostgreSQL server binaries (initdb, postgres, psql) from Debian's packages, for the
# several-node store and its tests. No cluster is created or started here: tests start their
# own servers on tmpfs, and a deployment points `database` at its own server.
ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql (apt-get)" >&2
    # Debian's postinst would create and start a "main" cluster: not wanted here.
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
      $sudo tee /etc/postgresql-common/createcluster.d/kms-bridge.conf >/dev/null
    _apt_install -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
  fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export KMS_BRIDGE_PG_BIN="$bin"
  # initdb refuses to run as root: tests run the server as the postgres user.
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
}

# Dev credentials in FILE (sourceable AWS_* lines): kept if FILE exists, generated otherwise;
# AWS_ENDPOINT_URL_KMS is rewritten to ENDPOINT. Sets akid, secret, region and creds_new (1 if
# generated now).
dev_credentials() {
  local file=$1 endpoint=$2
  region=${3:-us-east-1}
  creds_new=0
  if [ -f "$file" ]; then
    # shellcheck disable=SC1090
    source "$file"
    akid=$AWS_ACCESS_KEY_ID
    secret=$AWS_SECRET_ACCESS_KEY
    region=${AWS_DEFAULT_REGION:-$region}
  else
    akid="AKIA$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' | cut -c1-16)"
    secret=$(head -c 30 /dev/urandom | base64 | tr '+/' 'Ab' | cut -c1-40)
    creds_new=1
  fi
  (
    umask 077
    cat > "$file" <<ENV
AWS_ACCESS_KEY_ID=$akid
AWS_SECRET_ACCESS_KEY=$secret
AWS_DEFAULT_REGION=$region
AWS_ENDPOINT_URL_KMS=$endpoint
ENV
  )
}

# Kryoptic, a second PKCS#11 software token (with vendored OpenSSL 3.x: EdDSA, ML-DSA, ML-KEM,
# RSA-OAEP with SHA-256), built from crates.io with softhsm/kryoptic/ into
# .cache/kryoptic/ under the checkout, once per recipe. Sets KMS_BRIDGE_KRYOPTIC_MODULE.
ensure_kryoptic() {
  local root recipe cache stamp want
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  recipe="$root/softhsm/kryoptic"
  cache="$root/.cache/kryoptic"
  stamp="$cache/lib/recipe.sha256"
  want=$(cat "$recipe/Cargo.toml" "$recipe/Cargo.lock" | sha256sum | cut -d' ' -f1)
  export KMS_BRIDGE_KRYOPTIC_MODULE="$cache/lib/libkryoptic_pkcs11.so"
  if [ -f "$KMS_BRIDGE_KRYOPTIC_MODULE" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  # bindgen needs libclang; OpenSSL's build needs perl and make; the token store, SQLite.
  local need=()
  compgen -G "/usr/lib/llvm-*/lib/libclang.so" >/dev/null || need+=(libclang-dev)  # not libclang-cpp
  command -v perl >/dev/null || need+=(perl)
  command -v make >/dev/null || need+=(make)
  [ -e /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
  command -v pkcs11-tool >/dev/null || need+=(opensc)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]} (apt-get)" >&2
    _apt_install "${need[@]}"
  fi
  echo "building kryoptic (crates.io, once; a few minutes)" >&2
  cargo build --release --locked --quiet --manifest-path "$recipe/Cargo.toml" \
    --target-dir "$cache/target"
  local built
  built=$(ls -t "$cache"/target/release/deps/libkryoptic_pkcs11-*.so | head -1)
  mkdir -p "$cache/lib"
  cp "$built" "$KMS_BRIDGE_KRYOPTIC_MODULE.tmp"
  mv "$KMS_BRIDGE_KRYOPTIC_MODULE.tmp" "$KMS_BRIDGE_KRYOPTIC_MODULE"
  echo "$want" > "$stamp"
}

# The console's browser tests: Debian's Chromium and Playwright for Python in the venv. The
# tests launch /usr/bin/chromium themselves (`playwright install` would download a browser of
# its own, which is neither wanted nor possible here).
ensure_browser() {
  local venv="$1"
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (apt-get)" >&2
    _apt_install chromium
  fi
  if ! "$venv/bin/python" -c 'import playwright.sync_api' >/dev/null 2>&1; then
    echo "installing playwright into $venv (pip)" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check playwright
  fi
}
