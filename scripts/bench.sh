#!/usr/bin/env bash
# Measure kms-bridge beside its token's raw ceiling (issue 5): installs what is missing,
# builds release, starts a server on a fresh SoftHSM token (on tmpfs) with its data directory
# — the audit trail every answer waits for, and the database — on the disk (a directory under
# the checkout, or $BENCH_DIR), runs `kms-bridge bench` against it, prints the table and writes
# it to docs/PERFORMANCE.md (between the bench markers, so the analysis around them stays),
# then stops the server and removes the token and data.
#   --tmpfs            the data directory on tmpfs too (the old figure); --both: both runs, the
#                      tmpfs one written to the bench-tmpfs section
#   BENCH_DIR          where the on-disk data directory goes (default target/bench-data)
#   BENCH_SECONDS      measured seconds per operation (default 10)
#   BENCH_CONNECTIONS  concurrent connections (default 16)
#   BENCH_OPS          comma-separated operations (default all; see `kms-bridge bench --help`)
#   BENCH_MOTO=1       also measure moto_server (pip install 'moto[server]' into .venv); or --moto
#   BENCH_OUTPUT       Markdown file to write (default docs/PERFORMANCE.md; "-" for none)
#   BENCH_SCALE_KEYS=N also measure key-count scaling (or --scale N): create N keys, restart the
#                      server timing its start-up, Encrypt over 10 keys vs all N, server memory
#   BENCH_FLOOD=N      (or --flood N) N more connections flood GenerateDataKeyPair RSA_4096
#                      during every measurement (quotas off: only the keygen lane limits it)
#   BENCH_NULL=0       skip the floor experiment (default on): Encrypt 4 KiB also against a null
#                      endpoint (the server's HTTP stack answering a fixed response), and that
#                      endpoint writing a durable audit record per request next to the server's
#   BENCH_MAIN=0       skip the main table (e.g. with BENCH_SCALE_KEYS, to run only that)
#   BENCH_NODES=1,3    also (or --nodes 1,3) measure clusters: for each count, that many nodes on
#                      one PostgreSQL database (tmpfs) and one token, the load spread over them
#                      (ops from BENCH_CLUSTER_OPS, default encrypt-4k); printed, not written
# Other arguments go to `kms-bridge bench` (e.g. --raw-threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages

moto=${BENCH_MOTO:-0}
where=${BENCH_WHERE:-disk}
cluster_nodes=${BENCH_NODES:-}
scale=${BENCH_SCALE_KEYS:-0}
main=${BENCH_MAIN:-1}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --moto) moto=1 ;;
    --scale) scale=$2; shift ;;
    --nodes) cluster_nodes=$2; shift ;;
    --tmpfs) where=tmpfs ;;
    --both) where=both ;;
    *) extra+=("$1") ;;
  esac
  shift
done
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-16}
output=${BENCH_OUTPUT:-docs/PERFORMANCE.md}

cargo build --release --quiet
bin=$root/target/release/kms-bridge

base=/dev/shm
[ -d "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/kms-bridge-bench.XXXXXX")
disk_base=${BENCH_DIR:-$root/target/bench-data}
mkdir -p "$disk_base"
disk=$(mktemp -d "$disk_base/run.XXXXXX")
server_pid=""
moto_pid=""
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$server_pid"
  stop "$moto_pid"
  for p in "${node_pids[@]}"; do stop "$p"; done
  if [ -n "$pg_dir" ]; then
    as_pg "$KMS_BRIDGE_PG_BIN/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work" "$disk"
}
node_pids=()
pg_dir=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap cleanup EXIT

label=kms-bridge-bench
data=$work
softhsm/init-token.sh "$data" "$label" >/dev/null
export SOFTHSM2_CONF="$data/softhsm2.conf"

# Bootstrap credentials (KMS_BRIDGE_BOOTSTRAP_CREDENTIALS): the server verifies every
# signature against them; the bench signs with them.
region=${AWS_DEFAULT_REGION:-us-east-1}
akid="AKIA$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' | cut -c1-16)"
secret=$(head -c 30 /dev/urandom | base64 | tr '+/' 'Ab' | cut -c1-40)
creds=$work/bootstrap-credentials.env
(
  umask 077
  printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_DEFAULT_REGION=%s\n' \
    "$akid" "$secret" "$region" > "$creds"
)

# Start the server; sets server_pid, addr and startup_seconds (process start → listening).
start_server() {
  local t0 t1
  t0=$(date +%s.%N)
  KMS_BRIDGE_LISTEN=${addr:-127.0.0.1:0} \
  KMS_BRIDGE_DATA_DIR="$data" \
  KMS_BRIDGE_AUDIT__DIR="${state_dir:-$data}/audit" \
  KMS_BRIDGE_DATABASE="${KMS_BRIDGE_DATABASE:-${state_dir:-$data}/kms-bridge.db}" \
  KMS_BRIDGE_TOKEN__LABEL="$label" \
  KMS_BRIDGE_TOKEN__PIN_FILE="$data/token-pin" \
  KMS_BRIDGE_REGIONS="$region" \
  KMS_BRIDGE_BOOTSTRAP_CREDENTIALS="$creds" \
  KMS_BRIDGE_QUOTAS__SYMMETRIC=0 KMS_BRIDGE_QUOTAS__RSA=0 KMS_BRIDGE_QUOTAS__ECC=0 \
  KMS_BRIDGE_QUOTAS__GENERATE_RANDOM=0 KMS_BRIDGE_QUOTAS__CREATE_KEY=0 \
  KMS_BRIDGE_QUOTAS__MANAGEMENT=0 KMS_BRIDGE_QUOTAS__DATA_KEY_PAIR_ECC=0 \
  KMS_BRIDGE_QUOTAS__DATA_KEY_PAIR_RSA_2048=0 KMS_BRIDGE_QUOTAS__DATA_KEY_PAIR_RSA_3072=0 \
  KMS_BRIDGE_QUOTAS__DATA_KEY_PAIR_RSA_4096=0 \
  "$bin" serve > "$data/server.out" 2>> "$work/server.log" &
  server_pid=$!
  addr=""
  for _ in $(seq 1 3000); do
    addr=$(sed -n 's|^kms-bridge listening on http://||p' "$data/server.out" | head -n 1)
    [ -n "$addr" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "bench.sh: the server did not start:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    sleep 0.01
  done
  [ -n "$addr" ] || { echo "bench.sh: no listening line from the server" >&2; exit 1; }
  t1=$(date +%s.%N)
  startup_seconds=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  echo "bench.sh: kms-bridge on http://$addr (pid $server_pid, listening after ${startup_seconds} s), token in $work, audit trail and database in ${state_dir:-$data}" >&2
}
case "$where" in
  disk) locations=(disk) ;;
  tmpfs) locations=(tmpfs) ;;
  both) locations=(disk tmpfs) ;;
  *) echo "bench.sh: BENCH_WHERE must be disk, tmpfs or both" >&2; exit 2 ;;
esac
# Where the audit trail and the database go (the token stays on tmpfs: it stands for an HSM).
state_for() { if [ "$1" = disk ]; then echo "$disk"; fi; }
state_dir=$(state_for "${locations[0]}")
start_server

if [ "$moto" = 1 ]; then
  venv=$root/.venv
  if [ ! -x "$venv/bin/moto_server" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      _apt_install python3-venv
      python3 -m venv "$venv"
    fi
    echo "installing moto[server] into $venv (pip)" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]'
  fi
  moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$work/moto.log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $moto_port), 1)" 2>/dev/null && break
    sleep 0.2
  done
  extra+=(--moto-endpoint "http://127.0.0.1:$moto_port")
fi

markdown=()
[ "$output" = "-" ] || markdown=(--markdown "$output")
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
rc=0
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=$region
for loc in "${locations[@]}"; do
  [ "$main" = 1 ] || break
  if [ "$loc" != "${locations[0]}" ]; then
    stop "$server_pid"
    state_dir=$(state_for "$loc")
    addr=""
    start_server
  fi
  section=bench
  [ "$where" = both ] && [ "$loc" = tmpfs ] && section=bench-tmpfs
  if [ "$loc" = disk ]; then
    fs=$(df -PT "$disk" | awk 'NR == 2 {print $2 " on " $1}')
    place="audit trail and database on the disk ($disk, $fs); token on tmpfs ($base)"
  else
    place="token, audit trail and database on tmpfs ($base)"
  fi
  null=()
  [ "${BENCH_NULL:-1}" = 1 ] && null=(--null --null-audit-dir "${state_dir:-$data}")
  set +e
  "$bin" bench \
    --endpoint "http://$addr" \
    "${null[@]}" \
    --token-label "$label" \
    --pin-file "$data/token-pin" \
    --server-pid "$server_pid" \
    --seconds "$seconds" \
    --connections "$connections" \
    ${BENCH_OPS:+--ops "$BENCH_OPS"} \
    --section "$section" \
    --note "scripts/bench.sh at $rev: release build, fresh token and data dir; $place" \
    --note "load generator, server and raw loops share the machine; raw and server runs alternate" \
    --note "server with SigV4 verification, key-policy and identity-policy evaluation and the fail-closed audit trail on; request quotas off (they would throttle the load)" \
    "${markdown[@]}" "${extra[@]}"
  r=$?
  set -e
  [ "$r" = 0 ] || rc=$r
done
# Key-count scaling and clusters as before: everything on tmpfs.
state_dir=""

if [ "$scale" -gt 0 ]; then
  # A fresh token and data dir, so the token holds the N keys (and a handful of others) only.
  stop "$server_pid"
  data=$work/scale
  mkdir -p "$data"
  softhsm/init-token.sh "$data" "$label" >/dev/null
  export SOFTHSM2_CONF="$data/softhsm2.conf"
  addr=""
  start_server
  keys_file=$data/scale-keys.txt
  "$bin" bench --endpoint "http://$addr" --connections "$connections" \
    --populate "$scale" --keys-file "$keys_file"
  stop "$server_pid"
  start_server   # same address, same data dir and token
  set +e
  "$bin" bench \
    --endpoint "http://$addr" \
    --server-pid "$server_pid" \
    --seconds "$seconds" \
    --connections "$connections" \
    --scale-keys-file "$keys_file" \
    --startup-seconds "$startup_seconds" \
    --note "scripts/bench.sh at $rev: a fresh token, $scale keys created through the API, then the server restarted (start-up timed); token and data dir on tmpfs ($base)" \
    --note "server with SigV4, policies and the fail-closed audit trail on; request quotas off" \
    "${markdown[@]}"
  scale_rc=$?
  set -e
  [ "$scale_rc" = 0 ] || rc=$scale_rc
fi
if [ -n "$cluster_nodes" ]; then
  # Clusters: one PostgreSQL server (tmpfs, fsync off like the tokens here), one token.
  stop "$server_pid"
  server_pid=""
  ensure_postgres
  pg_dir=$work/pg
  mkdir -p "$pg_dir"
  if [ "$(id -u)" -eq 0 ]; then chmod o+x "$work"; chown postgres: "$pg_dir"; fi
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$KMS_BRIDGE_PG_BIN/initdb" -D "$pg_dir/data" -U kms -A trust -E UTF8 --locale=C --no-sync >/dev/null
  as_pg "$KMS_BRIDGE_PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  data=$work/cluster
  mkdir -p "$data"
  softhsm/init-token.sh "$data" "$label" >/dev/null
  export SOFTHSM2_CONF="$data/softhsm2.conf"
  token_dir=$data
  for count in ${cluster_nodes//,/ }; do
    db="c$count"
    as_pg "$KMS_BRIDGE_PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U kms -d postgres -qc "CREATE DATABASE $db" >/dev/null
    endpoints=""
    node_pids=()
    for k in $(seq 1 "$count"); do
      data=$token_dir/n$count-$k
      mkdir -p "$data"
      cp "$token_dir/token-pin" "$data/token-pin"
      addr=""
      KMS_BRIDGE_DATABASE="postgres://kms@127.0.0.1:$pg_port/$db" KMS_BRIDGE_NODE_ID="node-$k" \
        start_server
      node_pids+=("$server_pid")
      server_pid=""
      endpoints+="${endpoints:+,}http://$addr"
    done
    echo "bench.sh: $count node(s) on PostgreSQL: $endpoints" >&2
    set +e
    "$bin" bench \
      --endpoint "$endpoints" \
      --token-label "$label" \
      --pin-file "$token_dir/token-pin" \
      --seconds "$seconds" \
      --connections "$connections" \
      --ops "${BENCH_CLUSTER_OPS:-encrypt-4k}" \
      --note "scripts/bench.sh --nodes at $rev: $count node(s), one PostgreSQL 15 database and one SoftHSM token, all on tmpfs ($base), connections spread over the nodes" \
      --note "load generator, PostgreSQL, the nodes and the raw loops share the machine"
    c_rc=$?
    set -e
    [ "$c_rc" = 0 ] || rc=$c_rc
    for p in "${node_pids[@]}"; do stop "$p"; done
    node_pids=()
  done
fi
if grep -q "ERROR" "$work/server.log"; then
  echo "bench.sh: the server logged errors:" >&2
  grep "ERROR" "$work/server.log" | tail -n 20 >&2
fi
exit "$rc"
