#!/usr/bin/env bash
# Where one operation's cost goes (issue 15), in figures other processes on the machine disturb
# little: starts a release server on a fresh SoftHSM token (tmpfs) with its data directory on
# the disk (or tmpfs), drives it with `kms-bridge bench` and prints, per request:
#   server CPU (user+system, from the bench), context switches of all server threads
#   (voluntary / involuntary), audit records per fsync and fsyncs per request (the server's
#   metrics), and with --callgrind the server's user-space instructions per request
#   (valgrind's callgrind, instrumentation switched on after the warm-up only).
#   scripts/profile.sh [--tmpfs] [--callgrind|--strace|--perf] [OP]   (OP default encrypt-4k)
#   (--perf: `perf record -e cpu-clock -g` of the server into PROFILE_OUT/perf.data; read it
#   with `perf report -i …`)
#   PROFILE_SECONDS (default 5; with --callgrind 20), PROFILE_CONNECTIONS (default 16),
#   PROFILE_SERVER_ENV (extra NAME=VALUE settings for the server only, e.g.
#   "KMS_BRIDGE_TOKEN__THREADS=1"), PROFILE_OUT (callgrind/strace output directory, default target/profile), PROFILE_BIN (a
#   kms-bridge binary to measure instead of building this checkout, e.g. a saved baseline)
# Does not write docs/PERFORMANCE.md: scripts/bench.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib.sh
ensure_packages

where=disk
tool=""
op=encrypt-4k
while [ $# -gt 0 ]; do
  case "$1" in
    --tmpfs) where=tmpfs ;;
    --callgrind) tool=callgrind ;;
    --strace) tool=strace ;;
    --perf) tool=perf ;;
    -*) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    *) op=$1 ;;
  esac
  shift
done
seconds=${PROFILE_SECONDS:-5}
[ "$tool" = callgrind ] && seconds=${PROFILE_SECONDS:-20}
connections=${PROFILE_CONNECTIONS:-16}
out=${PROFILE_OUT:-$root/target/profile}
mkdir -p "$out"

if [ -n "${PROFILE_BIN:-}" ]; then
  bin=$PROFILE_BIN
else
  cargo build --release --quiet
  bin=$root/target/release/kms-bridge
fi
work=$(mktemp -d /dev/shm/kms-bridge-profile.XXXXXX)
disk_base=${BENCH_DIR:-$root/target/bench-data}
mkdir -p "$disk_base"
state=$work
[ "$where" = disk ] && state=$(mktemp -d "$disk_base/profile.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  [ "$state" = "$work" ] || rm -rf "$state"
}
trap cleanup EXIT

label=kms-bridge-profile
softhsm/init-token.sh "$work" "$label" >/dev/null
export SOFTHSM2_CONF="$work/softhsm2.conf"
region=us-east-1
akid="AKIA$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' | cut -c1-16)"
secret=$(head -c 30 /dev/urandom | base64 | tr '+/' 'Ab' | cut -c1-40)
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$akid" "$secret" > "$work/creds.env"

prefix=()
case "$tool" in
  callgrind)
    prefix=(valgrind --tool=callgrind --instr-atstart=no --collect-systime=no
      "--callgrind-out-file=$out/callgrind.%p.out") ;;
esac
KMS_BRIDGE_LISTEN=127.0.0.1:0 \
KMS_BRIDGE_METRICS_LISTEN=127.0.0.1:0 \
KMS_BRIDGE_DATA_DIR="$work" \
KMS_BRIDGE_AUDIT__DIR="$state/audit" \
KMS_BRIDGE_DATABASE="$state/kms-bridge.db" \
KMS_BRIDGE_TOKEN__LABEL="$label" \
KMS_BRIDGE_TOKEN__PIN_FILE="$work/token-pin" \
KMS_BRIDGE_REGIONS="$region" \
KMS_BRIDGE_BOOTSTRAP_CREDENTIALS="$work/creds.env" \
KMS_BRIDGE_QUOTAS__SYMMETRIC=0 KMS_BRIDGE_QUOTAS__RSA=0 KMS_BRIDGE_QUOTAS__ECC=0 \
KMS_BRIDGE_QUOTAS__GENERATE_RANDOM=0 KMS_BRIDGE_QUOTAS__CREATE_KEY=0 \
KMS_BRIDGE_QUOTAS__MANAGEMENT=0 \
  "${prefix[@]}" env ${PROFILE_SERVER_ENV:-} "$bin" serve > "$work/server.out" 2> "$work/server.log" &
pid=$!
addr="" metrics=""
for _ in $(seq 1 6000); do
  addr=$(sed -n 's|^kms-bridge listening on http://||p' "$work/server.out" | head -n 1)
  metrics=$(sed -n 's|^kms-bridge metrics on http://||p' "$work/server.out" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "profile.sh: the server did not start" >&2; exit 1; }
[ "$where" = disk ] && echo "audit trail and database on $(df -PT "$state" | awk 'NR==2 {print $2 " on " $1}') ($state)" >&2

metric() { # sum of a metric's samples (name prefix, optional label filter)
  curl -s "http://$metrics/metrics" | awk -v m="$1" -v f="${2:-}" \
    '$1 ~ "^"m && (f == "" || index($1, f)) {s += $NF} END {printf "%d\n", s}'
}
ctxsw() { # voluntary and involuntary context switches of every thread of the server
  cat /proc/"$pid"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v, n}'
}

export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=$region
# Warm-up run: creates the key, fills caches and working copies.
"$bin" bench --endpoint "http://$addr" --ops "$op" --seconds 1 --warmup 0.5 \
  --connections "$connections" >/dev/null 2>&1 || true

[ "$tool" = callgrind ] && callgrind_control -i on "$pid" >/dev/null
strace_pid=""
if [ "$tool" = perf ]; then
  # cpu-clock samples of every server thread, user and kernel (no hardware counters needed).
  perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$out/perf.data" 2>/dev/null &
  strace_pid=$!
  sleep 1
elif [ "$tool" = strace ]; then
  strace -c -f -p "$pid" -o "$out/strace.txt" 2>/dev/null &
  strace_pid=$!
  sleep 1
fi
req0=$(metric kms_requests_total 'outcome="success"')
records0=$(metric kms_audit_records_total)
batches0=$(metric kms_audit_write_seconds_count)
read -r v0 n0 < <(ctxsw)
"$bin" bench --endpoint "http://$addr" --ops "$op" --seconds "$seconds" --warmup 0 \
  --connections "$connections" --server-pid "$pid" | tee "$work/bench.txt"
read -r v1 n1 < <(ctxsw)
req1=$(metric kms_requests_total 'outcome="success"')
records1=$(metric kms_audit_records_total)
batches1=$(metric kms_audit_write_seconds_count)
if [ "$tool" = callgrind ]; then
  callgrind_control -d "$pid" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
fi
if [ -n "$strace_pid" ]; then
  kill -INT "$strace_pid" 2>/dev/null || true
  wait "$strace_pid" 2>/dev/null || true
fi
reqs=$((req1 - req0))
batches=$((batches1 - batches0))
echo
# The bench's row: ops/s, latency percentiles, server and bench CPU per operation.
awk 'NR > 2 && NF > 5 && $0 !~ /^-/' "$work/bench.txt" | tail -n 1 |
  awk '{n = NF; printf "ops/s %s, p50 %s ms, p99 %s ms, server CPU %s µs/op, bench CPU %s µs/op\n", $(n-10), $(n-9), $(n-7), $(n-1), $n}'
echo "requests (server count): $reqs"
awk -v r="$reqs" -v b="$batches" -v rec="$((records1 - records0))" -v v="$((v1 - v0))" -v n="$((n1 - n0))" 'BEGIN {
  if (r == 0) exit
  if (rec == 0) rec = r   # a server without kms_audit_records_total: one record per request
  printf "audit: %d records in %d batches, %.2f records per fsync, %.3f fsyncs per request\n", rec, b, (b ? rec / b : 0), b / r
  printf "context switches per request: %.2f voluntary, %.2f involuntary\n", v / r, n / r
}'
if [ "$tool" = callgrind ]; then
  # The dump (".out.1"), not the file written when the server exits.
  f="$out/callgrind.$pid.out.1"
  ir=$( (callgrind_annotate "$f" 2>/dev/null || true) | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  # Valgrind hides the CPU's SHA extensions, so sha2 runs its portable code there (~20x the
  # instructions of the SHA-NI code the server runs natively): reported apart.
  sha=$( (callgrind_annotate --inclusive=yes "$f" 2>/dev/null || true) |
    awk '/sha2::sha256::compress256 \[/ {gsub(",", "", $1); print $1; exit}')
  echo "callgrind: $f"
  awk -v i="$ir" -v s="${sha:-0}" -v r="$reqs" 'BEGIN { if (r) printf "user-space instructions per request: %.0f (%.0f without SHA-256 compression, %.0f in it)\n", i / r, (i - s) / r, s / r }'
fi
if [ "$tool" = strace ]; then
  echo "syscalls (strace -c -f, per request = calls / $reqs):"
  awk -v r="$reqs" 'NR > 2 && $NF != "total" && NF >= 5 && $4 ~ /^[0-9]+$/ {
      printf "  %-20s %8.3f\n", $NF, $4 / r }' "$out/strace.txt" | sort -k2 -nr | head -n 15
fi
