#!/usr/bin/env bash
# A single-node local Kafka broker (KRaft, no ZooKeeper, no Docker) for development and tests.
#
#   tools/kafka/kafka.sh up       start it (idempotent) and wait until it serves metadata
#   tools/kafka/kafka.sh down     stop it (idempotent)
#   tools/kafka/kafka.sh status   exit 0 if it is running and answering, 1 otherwise
#
# Needs Java 17+ and, the first time only, Maven (to fetch the broker jars from Maven Central
# into KAFKA_LIB, see tools/kafka/pom.xml). Environment:
#   KAFKA_PORT   client port on 127.0.0.1 (default 9092); the controller uses KAFKA_PORT+1
#   KAFKA_DIR    data/, logs/, server.properties and kafka.pid (default <repo>/.local/kafka)
#   KAFKA_LIB    the resolved jars, shared by every KAFKA_DIR (default <repo>/.cache/kafka-lib)
#   KAFKA_HEAP   maximum JVM heap (default 768m)
#   KAFKA_SASL_PORT   optional: also listen for SASL_PLAINTEXT (mechanism PLAIN) on this port
#   KAFKA_SASL_USERS  its users, name:password,... (default exfilguard:exfilguard-secret)
#   KAFKA_SSL_PORT    optional: also listen for TLS (no client certificate) on this port
#   KAFKA_MTLS_PORT   optional: also listen for mutual TLS (a client certificate required)
#   KAFKA_SSL_KEYSTORE    for either: PEM file, the broker's private key (PKCS#8) and certificate
#   KAFKA_SSL_TRUSTSTORE  for KAFKA_MTLS_PORT: PEM file of the CA that signs client certificates
#   KAFKA_NODE_ID, KAFKA_VOTERS, KAFKA_CLUSTER_ID, KAFKA_REPLICATION
#                one node of a cluster (tools/kafka/cluster.sh sets them): its id, the quorum's
#                controller.quorum.voters, the id all nodes format with, and the replication
#                factor of new and internal topics (min.insync.replicas is one less)
#   PYTHON       a Python with confluent-kafka, for the readiness check (default <repo>/.venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$HERE/../.." && pwd -P)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_DIR="${KAFKA_DIR:-$REPO/.local/kafka}"
KAFKA_LIB="${KAFKA_LIB:-$REPO/.cache/kafka-lib}"
KAFKA_HEAP="${KAFKA_HEAP:-768m}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

POM="$HERE/pom.xml"
LOG4J_CONF="$HERE/log4j2.properties"

die() { echo "kafka: $*" >&2; exit "${EXIT_CODE:-1}"; }

[[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] && (( KAFKA_PORT > 0 && KAFKA_PORT < 65535 )) \
  || EXIT_CODE=2 die "KAFKA_PORT must be a port number below 65535, got '$KAFKA_PORT'"
CONTROLLER_PORT=$((KAFKA_PORT + 1))
NODE_ID="${KAFKA_NODE_ID:-1}"
VOTERS="${KAFKA_VOTERS:-$NODE_ID@127.0.0.1:$CONTROLLER_PORT}"
REPLICATION="${KAFKA_REPLICATION:-1}"
MIN_ISR=$(( REPLICATION > 1 ? REPLICATION - 1 : 1 ))
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

KAFKA_DIR="$(realpath -m "$KAFKA_DIR")"
KAFKA_LIB="$(realpath -m "$KAFKA_LIB")"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
PROPS="$KAFKA_DIR/server.properties"
MARKER=".resolved"

# KAFKA_DIR relative to the repo when it is inside it, for shorter messages.
show_dir() { case "$KAFKA_DIR" in "$REPO"/*) echo "${KAFKA_DIR#"$REPO"/}" ;; *) echo "$KAFKA_DIR" ;; esac; }

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1; }

# The marker records the Kafka version and a hash of the pom, so any change to it re-resolves.
wanted_marker() { echo "kafka $(kafka_version) pom $(sha256sum "$POM" | cut -c1-16)"; }

lib_is_ready() { [[ -f "$KAFKA_LIB/$MARKER" && "$(cat "$KAFKA_LIB/$MARKER")" == "$(wanted_marker)" ]]; }

java_major() {
  # 'openjdk version "17.0.15" ...' or 'java version "1.8.0_392"'
  local v
  v="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1)"
  [[ "$v" == 1.* ]] && v="${v#1.}"
  echo "${v%%[.+-]*}"
}

check_prereqs() {
  local missing=() major
  if ! command -v java >/dev/null 2>&1; then
    missing+=("java (17+)")
  else
    major="$(java_major)"
    if ! [[ "$major" =~ ^[0-9]+$ ]] || (( major < 17 )); then
      missing+=("java 17+ (found '${major:-unknown}' at $(command -v java))")
    fi
  fi
  if ! lib_is_ready && ! command -v mvn >/dev/null 2>&1; then
    missing+=("mvn (needed once to fetch the broker jars)")
  fi
  if (( ${#missing[@]} )); then
    local what
    what="$(printf '%s, ' "${missing[@]}")"
    EXIT_CODE=2 die "missing ${what%, }; install with: sudo apt-get install openjdk-17-jre-headless maven"
  fi
  if ! "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
    EXIT_CODE=2 die "$PYTHON cannot import confluent_kafka (used to check the broker is up); run 'make install' or set PYTHON"
  fi
}

resolve_jars() {
  lib_is_ready && return 0
  local lock="$KAFKA_LIB.lock"
  mkdir -p "$(dirname "$KAFKA_LIB")"
  # Serialise concurrent first runs (e.g. parallel test workers) when flock is available.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    flock 9
    lib_is_ready && { exec 9>&-; return 0; }
  fi
  echo "kafka: fetching Kafka $(kafka_version) jars into $KAFKA_LIB (once; needs Maven Central)..." >&2
  local tmp
  tmp="$(mktemp -d "$KAFKA_LIB.tmp.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp/.mvn.log" 2>&1; then
    tail -n 30 "$tmp/.mvn.log" >&2
    die "could not fetch the broker jars with Maven (output above); check access to Maven Central"
  fi
  rm -f "$tmp/.mvn.log"
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven finished but no kafka_2.13 jar is in $tmp"
  wanted_marker >"$tmp/$MARKER"
  rm -rf "$KAFKA_LIB"
  mv -T "$tmp" "$KAFKA_LIB"
  trap - EXIT
  if command -v flock >/dev/null 2>&1; then exec 9>&-; fi
}

write_props() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://$BOOTSTRAP"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  local sasl=""
  if [[ -n "${KAFKA_SASL_PORT:-}" ]]; then
    # A SASL/PLAIN listener too, for testing clients that must authenticate. Users come from
    # KAFKA_SASL_USERS as name:password,name:password.
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
    advertised+=",SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
    protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    local users="" pair
    IFS=',' read -ra pairs <<<"${KAFKA_SASL_USERS:-exfilguard:exfilguard-secret}"
    for pair in "${pairs[@]}"; do users+=" user_${pair%%:*}=\"${pair#*:}\""; done
    sasl="sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$users;"
  fi
  local tls=""
  if [[ -n "${KAFKA_SSL_PORT:-}${KAFKA_MTLS_PORT:-}" ]]; then
    [[ -r "${KAFKA_SSL_KEYSTORE:-}" ]] \
      || EXIT_CODE=2 die "KAFKA_SSL_PORT/KAFKA_MTLS_PORT need KAFKA_SSL_KEYSTORE, a readable PEM file (key and certificate)"
    # Kafka reads PEM stores itself (ssl.keystore.type=PEM): the test's CA needs no keytool.
    tls="ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_SSL_KEYSTORE"
    if [[ -n "${KAFKA_SSL_PORT:-}" ]]; then
      listeners+=",SSL://127.0.0.1:$KAFKA_SSL_PORT"
      advertised+=",SSL://127.0.0.1:$KAFKA_SSL_PORT"
      protocols+=",SSL:SSL"
    fi
    if [[ -n "${KAFKA_MTLS_PORT:-}" ]]; then
      [[ -r "${KAFKA_SSL_TRUSTSTORE:-}" ]] \
        || EXIT_CODE=2 die "KAFKA_MTLS_PORT needs KAFKA_SSL_TRUSTSTORE, a readable PEM file of the clients' CA"
      listeners+=",MTLS://127.0.0.1:$KAFKA_MTLS_PORT"
      advertised+=",MTLS://127.0.0.1:$KAFKA_MTLS_PORT"
      protocols+=",MTLS:SSL"
      tls+="
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE"
    fi
  fi
  cat >"$PROPS" <<EOF
# Written by tools/kafka/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$sasl
$tls
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=true
# One node: replication 1 everywhere. A cluster: acks=all writes need REPLICATION-1 replicas in
# sync, so one node may be down. Small internal topics so the first group join is quick.
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
# A restart is refused (DUPLICATE_BROKER_REGISTRATION) until the previous run's broker session
# expires; the default 9 s session made every restart take ~15 s. 3 s is still far above any
# pause a local broker sees.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=750
EOF
}

kafka_cp() { echo "$KAFKA_LIB/*"; }

format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  # A Kafka cluster id (what `StorageTool random-uuid` prints: 16 random bytes, base64url, no
  # padding, not starting with '-'), made in Python to spare one JVM start.
  local uuid="${KAFKA_CLUSTER_ID:-}"
  [[ -n "$uuid" ]] || uuid="$("$PYTHON" -c '
import base64, uuid
while True:
    u = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not u.startswith("-"):
        print(u)
        break')"
  java -XX:TieredStopAtLevel=1 -cp "$(kafka_cp)" \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
    kafka.tools.StorageTool format -t "$uuid" -c "$PROPS" >"$LOG_DIR/format.out" 2>&1 \
    || { cat "$LOG_DIR/format.out" >&2; die "formatting the KRaft storage in $DATA_DIR failed"; }
}

# The pid from the pid file if that process is alive and is this KAFKA_DIR's broker; else nothing.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: the process must be kafka.Kafka with our server.properties.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    [[ "$cmd" == *kafka.Kafka*"$PROPS"* ]] || return 1
  fi
  echo "$pid"
}

# Waits until the broker at $BOOTSTRAP answers a metadata request listing a broker.
# $1: seconds to wait; $2 (optional): pid that must stay alive meanwhile.
wait_ready() {
  "$PYTHON" - "$BOOTSTRAP" "$1" "${2:-0}" <<'PY'
import os, sys, time
from confluent_kafka.admin import AdminClient

bootstrap, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + timeout
client = AdminClient({
    "bootstrap.servers": bootstrap,
    "log_level": 0,                    # no "connection refused" noise while it starts
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 500,
    "socket.connection.setup.timeout.ms": 2000,
})
while True:
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(3)
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit(1)
    try:
        md = client.list_topics(timeout=min(2.0, max(left, 0.1)))
        if md.brokers:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
PY
}

port_free() {
  "$PYTHON" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the JVM does; ignores TIME_WAIT
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

show_log_tail() {
  local f
  for f in "$LOG_DIR/kafka.out" "$LOG_DIR/server.log"; do
    [[ -s "$f" ]] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

cmd_up() {
  check_prereqs
  mkdir -p "$KAFKA_DIR"
  # One `up` at a time per KAFKA_DIR (a second one waits, then finds the broker running).
  # The broker does not inherit fd 8 (see below), so the lock goes when this script ends.
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$KAFKA_DIR/.up.lock"
    flock 8
  fi
  local pid
  if pid="$(running_pid)"; then
    local bound
    bound="$(sed -n 's|^advertised.listeners=PLAINTEXT://\([^,]*\).*|\1|p' "$PROPS" 2>/dev/null || true)"
    if [[ -n "$bound" && "$bound" != "$BOOTSTRAP" ]]; then
      EXIT_CODE=2 die "the broker from $(show_dir) is already running on $bound (pid $pid), not $BOOTSTRAP; run '$0 down' first"
    fi
    # Ours is running (maybe still starting, e.g. a concurrent `up`): wait for it.
    if wait_ready "$START_TIMEOUT" "$pid"; then
      echo "kafka: already up on $BOOTSTRAP (pid $pid, data $(show_dir))"
      return 0
    fi
    show_log_tail
    die "the broker from $(show_dir) (pid $pid) is running but does not answer on $BOOTSTRAP; try '$0 down' then '$0 up'"
  fi
  rm -f "$PID_FILE"

  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if ! port_free "$p"; then
      EXIT_CODE=2 die "port 127.0.0.1:$p is already in use by another process (not the broker from $(show_dir)); stop it or choose another KAFKA_PORT (the controller uses KAFKA_PORT+1)"
    fi
  done

  resolve_jars
  write_props
  format_storage

  : >"$LOG_DIR/kafka.out"
  # setsid + nohup: the broker outlives this shell, make, and a Ctrl-C in the terminal.
  # The inner bash writes its own pid, closes every inherited fd above 2 (a daemon must not
  # hold its caller's pipes or locks open) and then execs java, so the pid file names the JVM.
  # shellcheck disable=SC2016
  setsid nohup bash -c '
      echo $$ >"$1"; shift
      for fd in /proc/$$/fd/*; do
        fd=${fd##*/}; (( fd > 2 )) && eval "exec $fd>&-"
      done 2>/dev/null
      exec "$@"' kafka-start "$PID_FILE" \
    java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
      -cp "$(kafka_cp)" kafka.Kafka "$PROPS" \
    >>"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  local i
  for i in $(seq 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || { show_log_tail; die "the broker did not start (no pid written)"; }

  local rc=0
  wait_ready "$START_TIMEOUT" "$pid" || rc=$?
  if (( rc != 0 )); then
    show_log_tail
    if (( rc == 3 )); then
      rm -f "$PID_FILE"
      die "the broker exited during startup (logs in $LOG_DIR)"
    fi
    die "the broker (pid $pid) did not answer on $BOOTSTRAP within ${START_TIMEOUT}s (logs in $LOG_DIR); '$0 down' stops it"
  fi
  echo "kafka: up on $BOOTSTRAP (pid $pid, data $(show_dir))"
}

cmd_down() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    echo "kafka: not running (data $(show_dir))"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true   # in case it was stopped (Ctrl-Z, a debugger)
  local i
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: pid $pid still running after ${STOP_TIMEOUT}s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  echo "kafka: stopped (pid $pid)"
}

cmd_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "kafka: not running (data $(show_dir))"
    return 1
  fi
  if ! [[ -x "$PYTHON" ]] || ! wait_ready 5 "$pid"; then
    echo "kafka: pid $pid is running but not answering on $BOOTSTRAP"
    return 1
  fi
  echo "kafka: up on $BOOTSTRAP (pid $pid, data $(show_dir))"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status   (env: KAFKA_PORT KAFKA_DIR KAFKA_LIB KAFKA_HEAP PYTHON)" >&2; exit 2 ;;
esac
