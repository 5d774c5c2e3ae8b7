#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: every figure in it from one run of this script, on this machine.
#
#   bash bench/run.sh            # about 15 minutes; installs etcd-server and nats-server if missing
#
# Environment: RATE (fixed-rate comparison, default 2000/s), DURATION (seconds measured a
# run, default 10), RATES (the sweep), P99_MAX_US (the sweep's limit, default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-2000}
DURATION=${DURATION:-10}
RATES=${RATES:-1000,2000,5000,10000,20000,50000,100000,200000}
P99_MAX_US=${P99_MAX_US:-10000}
out=bench/results
rm -rf "$out"
mkdir -p "$out"

if ! command -v etcd >/dev/null || ! command -v nats-server >/dev/null; then
  sudo=""; if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server nats-server >/dev/null
fi
cargo build --release -q -p ordo-tools -p ordo-bench
ordo=target/release/ordo
started=$(date -u +"%Y-%m-%d %H:%M UTC")

# 1. Latency at one fixed rate, every system through the same open-loop harness.
latency() { # slug label args...
  local slug=$1 label=$2; shift 2
  echo "latency: $label" >&2
  "$ordo" bench "$@" --rate "$RATE" --size 64 --duration "$DURATION" --warmup 2 --json \
    --label "$label" --out "$out/$slug.hgrm" >> "$out/latency.jsonl"
}
latency floor-block "UDP ping-pong (floor), block" --baseline udp --idle block
latency floor-spin "UDP ping-pong (floor), busy-spin" --baseline udp --idle busy-spin
latency floor-backoff "UDP ping-pong (floor), backoff" --baseline udp --idle backoff
latency ordo-replicated "ordo replicated, std, block" --members 3 --durability replicated --idle block
latency ordo-replicated-uring "ordo replicated, io_uring, block" --members 3 --durability replicated --idle block --backend io_uring
latency ordo-replicated-backoff "ordo replicated, std, backoff" --members 3 --durability replicated --idle backoff
latency ordo-replicated-spin "ordo replicated, std, busy-spin" --members 3 --durability replicated --idle busy-spin
latency ordo-fsync "ordo fsync, std, block" --members 3 --durability fsync --idle block
latency ordo-fsync-uring "ordo fsync, io_uring, block" --members 3 --durability fsync --idle block --backend io_uring
latency nats "NATS JetStream R3 (replicated)" --peer nats --idle block
latency etcd "etcd (fsync)" --peer etcd --idle block

# 2. The highest rate each holds with p99 under the limit.
sweep() { # label args...
  local label=$1; shift
  echo "sweep: $label" >&2
  "$ordo" bench "$@" --rates "$RATES" --p99-max-us "$P99_MAX_US" --size 64 --duration 3 --warmup 1 --json \
    --label "$label" >> "$out/sweep.jsonl" || true
}
sweep "ordo replicated" --members 3 --durability replicated --idle block
sweep "ordo fsync" --members 3 --durability fsync --idle block
sweep "NATS JetStream R3" --peer nats --idle block
sweep "etcd" --peer etcd --idle block

# 3. Charts.
"$ordo" bench --plot "$out/latency-replicated.svg" \
  --inputs "$out/floor-block.hgrm,$out/ordo-replicated.hgrm,$out/ordo-replicated-uring.hgrm,$out/nats.hgrm"
"$ordo" bench --plot "$out/latency-fsync.svg" \
  --inputs "$out/floor-block.hgrm,$out/ordo-fsync.hgrm,$out/ordo-fsync-uring.hgrm,$out/etcd.hgrm"
"$ordo" bench --plot "$out/latency-idle.svg" \
  --inputs "$out/floor-spin.hgrm,$out/floor-block.hgrm,$out/floor-backoff.hgrm,$out/ordo-replicated-spin.hgrm,$out/ordo-replicated.hgrm,$out/ordo-replicated-backoff.hgrm"

# 4. Batching without a client on the path, in process.
echo "in-process cluster" >&2
target/release/ordo-bench-cluster --seconds 5 --rate "$RATE" > "$out/cluster.md"

# 5. Replay: a ledger cluster loaded through the client, stopped, its log replayed offline.
echo "replay" >&2
cluster="$out/ledger-cluster"
base=$((20000 + RANDOM % 20000))
"$ordo" init --dir "$cluster" --base-port "$base" --app ledger --durability replicated > /dev/null
# No snapshots, so the whole log stays to be replayed.
sed -i 's/^interval_bytes = .*/interval_bytes = 0/' "$cluster"/node-*/ordo.toml
"$ordo" cluster --dir "$cluster" > "$out/cluster.log" 2>&1 &
cluster_pid=$!
trap 'kill $cluster_pid 2>/dev/null || true' EXIT
sleep 2
"$ordo" bench --dir "$cluster" --rate 50000 --duration 10 --warmup 1 --json --label "ordo ledger" >> "$out/ledger-load.jsonl"
kill -TERM "$cluster_pid"; wait "$cluster_pid" || true
trap - EXIT
"$ordo" replay --dir "$cluster/node-1" --no-snapshot --json > "$out/replay.json"
"$ordo" log verify --dir "$cluster/node-1" --json > "$out/verify.json"

# 6. Snapshot and restore of 1 M ledger accounts, beside memcpy and fdatasync.
echo "snapshot" >&2
target/release/ordo-bench-snapshot --accounts 1000000 > "$out/snapshot.md"

# 7. Instruction counts of the hot paths (callgrind), where gungraun-runner is installed.
echo "instructions" >&2
if command -v gungraun-runner >/dev/null; then
  cargo bench -q -p ordo-bench --bench instructions 2>/dev/null \
    | awk '/^instructions::/ {name=$0; sub(/^instructions::hot_paths::/, "", name)} /Instructions:/ {split($2, n, "|"); print "| " name " | " n[1] " |"}' \
    > "$out/instructions.md"
else
  echo "| (gungraun-runner not installed: cargo install gungraun-runner --version 0.20.0) | |" > "$out/instructions.md"
fi

# 8. Failover as a client sees it: the demo kills the leader half way.
echo "failover" >&2
"$ordo" demo --seconds 10 > "$out/demo.txt" 2>&1

# The page.
report=target/release/ordo-bench-report
machine="$(lscpu | sed -n 's/^Model name: *//p' | sed -n 1p), $(nproc) cores, $(uname -r)"
replay_line=$(cat "$out/replay.json")
{
  cat <<PAGE
# ordo — benchmarks

Every figure here comes from one run of \`bash bench/run.sh\` on $started, on: $machine.
This machine is a small shared VM: read the ratios to the floor measured in the same run, not
the absolute times. Latency is measured open loop at a fixed rate from each command's
*intended* send time to its committed reply (coordinated omission corrected), in an
HdrHistogram, after a 2 s warm-up; 64-byte commands; 3 members on loopback.

## Latency at $RATE commands/s, ${DURATION} s

Idle strategies: \`block\` spins briefly, then waits on the socket (ppoll); \`busy-spin\` never
sleeps (four busy threads on two cores here); \`backoff\` spins, yields, then sleeps up to 1 ms.
The floor is a UDP ping-pong through the same harness. etcd 3.4 (Debian) always fsyncs its
WAL before acknowledging: read it against \`ordo fsync\`. NATS 2.9 (Debian) acknowledges a
JetStream publish once replicated, fsyncing on an interval: read it against \`ordo replicated\`.
Their clients here are ordo's own small HTTP/1.1 (etcd's JSON gateway, \`/v3/kv/put\`, 64
keep-alive connections to the leader) and NATS protocol clients (one connection to the
stream leader), driven by the same harness.

$($report latency "$out/latency.jsonl" --floor "UDP ping-pong (floor), block")

![replicated](bench/results/latency-replicated.svg)
![fsync](bench/results/latency-fsync.svg)
![idle strategies](bench/results/latency-idle.svg)

## Highest rate with p99 under ${P99_MAX_US} µs

Rates tried in turn: $RATES (3 s each after 1 s of warm-up); a rate counts only if every
command was answered. One client session (ordo), one connection (NATS), 64 connections (etcd).

$($report sweep "$out/sweep.jsonl")

## Batching, without a client on the path

Three members driven on one thread in process (\`ordo-bench-cluster\`), the leader kept busy
with up to 1 024 uncommitted commands:

$(cat "$out/cluster.md")

## Replay

A ledger cluster loaded through the client at 50 000 commands/s for 10 s, stopped, and
member 1's log replayed offline from the start (\`ordo replay --no-snapshot --json\`):

\`\`\`
$replay_line
\`\`\`

## Snapshot and restore, 1 M ledger accounts

$(cat "$out/snapshot.md")

## Instructions per operation (callgrind)

Stable whatever the machine is doing: \`cargo bench -p ordo-bench --bench instructions\`.

| operation | instructions |
| --- | --- |
$(cat "$out/instructions.md")

## Failover

\`ordo demo --seconds 10\` (ledger, 2 000 commands/s, durability fsync): the leader is SIGKILLed
half way.

\`\`\`
$(grep -E "killed|leads after|first reply|failover|latency from" "$out/demo.txt")
\`\`\`
PAGE
  echo
  cat bench/component-figures.md
} > BENCHMARKS.md
rm -rf "$cluster"
echo "wrote BENCHMARKS.md and $out/" >&2
