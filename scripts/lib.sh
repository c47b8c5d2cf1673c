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
