#!/usr/bin/env bash
# A local three-node Kafka cluster (KRaft, each node broker and controller) from the same jars as
# tools/kafka/kafka.sh, which runs each node. Topics replicate 3 times, min.insync.replicas=2:
# one node can be down and acks=all writes still succeed.
#
#   tools/kafka/cluster.sh up [N...]    start every node (or nodes N), wait until each answers
#   tools/kafka/cluster.sh down [N...]  stop every node (or nodes N)
#   tools/kafka/cluster.sh kill N...    SIGKILL nodes N (a crash: no shutdown)
#   tools/kafka/cluster.sh bootstrap    print the bootstrap servers
#
# Environment:
#   KAFKA_CLUSTER_DIR    node-1/ node-2/ node-3/, each a KAFKA_DIR (default <repo>/.local/kafka-cluster)
#   KAFKA_CLUSTER_PORTS  the nodes' client ports, comma-separated (default 9192,9194,9196);
#                        each node's controller listens on its port + 1
#   KAFKA_HEAP           maximum JVM heap of each node (default 512m)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$HERE/../.." && pwd -P)"
CLUSTER_DIR="$(realpath -m "${KAFKA_CLUSTER_DIR:-$REPO/.local/kafka-cluster}")"
IFS=',' read -ra PORTS <<<"${KAFKA_CLUSTER_PORTS:-9192,9194,9196}"
export KAFKA_HEAP="${KAFKA_HEAP:-512m}"

die() { echo "kafka-cluster: $*" >&2; exit 2; }

(( ${#PORTS[@]} == 3 )) || die "KAFKA_CLUSTER_PORTS must list 3 ports, got '${KAFKA_CLUSTER_PORTS:-}'"

voters() {
  local n out=""
  for n in 1 2 3; do out+="${out:+,}$n@127.0.0.1:$((PORTS[n - 1] + 1))"; done
  echo "$out"
}

bootstrap() {
  local n out=""
  for n in 1 2 3; do out+="${out:+,}127.0.0.1:${PORTS[n - 1]}"; done
  echo "$out"
}

cluster_id() {
  mkdir -p "$CLUSTER_DIR"
  if [[ ! -s "$CLUSTER_DIR/cluster.id" ]]; then
    # Any 16 bytes in base64url, not starting with '-': what StorageTool random-uuid prints.
    local id
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* ]] && id="A${id:1}"
    echo "$id" >"$CLUSTER_DIR/cluster.id"
  fi
  cat "$CLUSTER_DIR/cluster.id"
}

# kafka.sh for node $1, with the rest of the arguments.
node() {
  local n="$1"; shift
  [[ "$n" =~ ^[123]$ ]] || die "no node '$n': the nodes are 1, 2 and 3"
  KAFKA_DIR="$CLUSTER_DIR/node-$n" KAFKA_PORT="${PORTS[n - 1]}" KAFKA_NODE_ID="$n" \
    KAFKA_VOTERS="$(voters)" KAFKA_CLUSTER_ID="$(cluster_id)" KAFKA_REPLICATION=3 \
    "$HERE/kafka.sh" "$@"
}

cmd_up() {
  local nodes=("$@") n pids=() failed=0
  (( ${#nodes[@]} )) || nodes=(1 2 3)
  cluster_id >/dev/null
  # Together: a node waits for a quorum (two of the three controllers) before it answers.
  for n in "${nodes[@]}"; do node "$n" up & pids+=($!); done
  for n in "${!pids[@]}"; do wait "${pids[n]}" || failed=1; done
  (( failed == 0 )) || die "a node did not start (logs in $CLUSTER_DIR/node-*/logs)"
  echo "kafka-cluster: up on $(bootstrap)"
}

cmd_down() {
  local nodes=("$@") n pids=()
  (( ${#nodes[@]} )) || nodes=(1 2 3)
  # Together too: the last node alone would wait for a quorum to shut down cleanly.
  for n in "${nodes[@]}"; do node "$n" down & pids+=($!); done
  for n in "${!pids[@]}"; do wait "${pids[n]}" || true; done
}

cmd_kill() {
  (( $# )) || die "kill needs the nodes to kill (1, 2, 3)"
  local n pid
  for n in "$@"; do
    [[ "$n" =~ ^[123]$ ]] || die "no node '$n': the nodes are 1, 2 and 3"
    pid="$(tr -dc '0-9' <"$CLUSTER_DIR/node-$n/kafka.pid" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || { echo "kafka-cluster: node $n is not running"; continue; }
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$CLUSTER_DIR/node-$n/kafka.pid"
    echo "kafka-cluster: killed node $n (pid $pid)"
  done
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  kill) shift; cmd_kill "$@" ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 up|down|kill|bootstrap [N...]   (env: KAFKA_CLUSTER_DIR KAFKA_CLUSTER_PORTS KAFKA_HEAP)" >&2; exit 2 ;;
esac
