#!/usr/bin/env bash
# A local three-node kms-bridge demo: one PostgreSQL server, one SoftHSM token directory,
# three `kms-bridge serve` nodes and HAProxy in front of them. Installs what is missing
# (PostgreSQL, HAProxy: apt-get), keeps its state in $KMS_BRIDGE_DATA_DIR (default
# ./data-cluster) and stops everything on Ctrl-C.
#   KMS_BRIDGE_LISTEN    the load balancer's address (default 127.0.0.1:4599)
#   KMS_BRIDGE_DATA_DIR  token, database, node data, credentials (default ./data-cluster)
#   CLUSTER_NODES        how many nodes (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages
ensure_postgres
if ! command -v haproxy >/dev/null; then
  echo "installing haproxy (apt-get)" >&2
  _apt_install haproxy
fi

listen=${KMS_BRIDGE_LISTEN:-127.0.0.1:4599}
data_dir=${KMS_BRIDGE_DATA_DIR:-$root/data-cluster}
nodes=${CLUSTER_NODES:-3}
mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
region=${AWS_DEFAULT_REGION:-us-east-1}
host=${listen%:*}
port=${listen##*:}
pg_port=$((port + 100))

softhsm/init-token.sh "$data_dir" kms-bridge-dev

# PostgreSQL: a cluster of its own under the data directory (as the postgres user if root).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg="$data_dir/postgres"
if [ ! -d "$pg/data" ]; then
  mkdir -p "$pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pg"; fi
  as_pg "$KMS_BRIDGE_PG_BIN/initdb" -D "$pg/data" -U kms -A trust -E UTF8 --locale=C >/dev/null
fi
as_pg "$KMS_BRIDGE_PG_BIN/pg_ctl" -D "$pg/data" -l "$pg/log" -w \
  -o "-p $pg_port -k $pg -c listen_addresses=127.0.0.1" start >/dev/null
database="postgres://kms@127.0.0.1:$pg_port/postgres"

# Dev credentials: generated on first run, kept afterwards (as scripts/run.sh does).
creds="$data_dir/dev-credentials.env"
endpoint="http://$host:$port"
dev_credentials "$creds" "$endpoint" "$region"

cargo build --release --quiet

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$KMS_BRIDGE_PG_BIN/pg_ctl" -D "$pg/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

export SOFTHSM2_CONF="$data_dir/softhsm2.conf"
export KMS_BRIDGE_DATABASE="$database"
export KMS_BRIDGE_TOKEN__LABEL=kms-bridge-dev
export KMS_BRIDGE_TOKEN__PIN_FILE="$data_dir/token-pin"
export KMS_BRIDGE_BOOTSTRAP_CREDENTIALS="$creds"
export KMS_BRIDGE_REGIONS="${KMS_BRIDGE_REGIONS:-$region}"
backends=""
for i in $(seq 1 "$nodes"); do
  node_port=$((port + i))
  metrics_port=$((port + 50 + i))
  mkdir -p "$data_dir/node-$i"
  KMS_BRIDGE_NODE_ID="node-$i" \
  KMS_BRIDGE_LISTEN="127.0.0.1:$node_port" \
  KMS_BRIDGE_METRICS_LISTEN="127.0.0.1:$metrics_port" \
  KMS_BRIDGE_DATA_DIR="$data_dir/node-$i" \
    "$root/target/release/kms-bridge" serve >"$data_dir/node-$i/log" 2>&1 &
  pids+=($!)
  # One start at a time (SoftHSM dislikes simultaneous start-ups on one token).
  for _ in $(seq 1 100); do
    if grep -q "kms-bridge listening" "$data_dir/node-$i/log"; then break; fi
    sleep 0.1
  done
  grep -q "kms-bridge listening" "$data_dir/node-$i/log" || {
    echo "node-$i did not start:" >&2; tail -20 "$data_dir/node-$i/log" >&2; exit 1; }
  backends+="    server node-$i 127.0.0.1:$node_port check port $metrics_port"
  backends+=$'\n'
  echo "  node-$i: http://127.0.0.1:$node_port (readyz: http://127.0.0.1:$metrics_port/readyz)"
done

cat > "$data_dir/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend kms
    bind $host:$port
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
$backends
CFG
haproxy -f "$data_dir/haproxy.cfg" -db >"$data_dir/haproxy.log" 2>&1 &
pids+=($!)

echo "kms-bridge cluster: $nodes nodes behind HAProxy, PostgreSQL on 127.0.0.1:$pg_port"
echo "  endpoint:    $endpoint"
echo "  credentials: $creds (source it, then: aws kms list-keys)"
echo "  stop:        Ctrl-C"
wait -n "${pids[@]}"
