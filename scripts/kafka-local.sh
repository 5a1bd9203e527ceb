#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# for development, tests and CI, without Docker. Kafka comes from Maven
# Central through deploy/kafka-local/pom.xml; it needs a JDK 17+ and Maven.
#
#   scripts/kafka-local.sh start    resolve the classpath (cached), format once, start, wait until it answers
#   scripts/kafka-local.sh stop     SIGTERM, wait for a clean shutdown, SIGKILL after a timeout
#   scripts/kafka-local.sh status   exit 0 running and answering, 3 stopped, 1 alive but not answering
#   scripts/kafka-local.sh reset    stop, delete data and logs (keeps the classpath): next start is a fresh cluster
#   scripts/kafka-local.sh tool CLASS ARGS...   run a Kafka CLI class on the broker's classpath, e.g.
#       scripts/kafka-local.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Everything lives under KAFKA_LOCAL_DIR (default <repo>/.kafka-local, git-ignored):
#   classpath.txt, classpath.key   resolved runtime classpath and the pom hash it came from
#   data/                          KRaft metadata and topic logs
#   conf/                          generated server.properties and log4j2 configs
#   logs/server.log, logs/kafka.out  broker log (log4j2, rolled) and the JVM's stdout/stderr
#   kafka.pid
#
# A secured listener, off by default: KAFKA_LOCAL_SASL_SSL_PORT adds a
# SASL_SSL listener (SCRAM-SHA-256/512 over TLS) on that port, with the key
# and certificate chain in KAFKA_LOCAL_TLS_PEM (one PEM file: an unencrypted
# PKCS#8 private key, then the certificates), and turns on the ACL
# authorizer (StandardAuthorizer; no ACL, no access). The PLAINTEXT listener
# stays for the controller and for administration: its principal,
# User:ANONYMOUS, is the super user. SCRAM users and ACLs are then added
# with `tool kafka.admin.ConfigCommand` and `tool kafka.admin.AclCommand`
# (or any admin client) on the PLAINTEXT port.
#
# Environment: KAFKA_LOCAL_PORT (9092), KAFKA_LOCAL_CONTROLLER_PORT (9093),
# KAFKA_LOCAL_DIR, KAFKA_LOCAL_START_TIMEOUT (90 s), KAFKA_LOCAL_STOP_TIMEOUT
# (30 s), KAFKA_LOCAL_HEAP_OPTS (-Xms256m -Xmx512m), JAVA_HOME, MVN (mvn).
# Loopback only: the broker binds and advertises 127.0.0.1, and the script
# connects nowhere else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/deploy/kafka-local/pom.xml"
DIR="${KAFKA_LOCAL_DIR:-$ROOT/.kafka-local}"
PORT="${KAFKA_LOCAL_PORT:-9092}"
CPORT="${KAFKA_LOCAL_CONTROLLER_PORT:-9093}"
SPORT="${KAFKA_LOCAL_SASL_SSL_PORT:-}"
TLS_PEM="${KAFKA_LOCAL_TLS_PEM:-}"
START_TIMEOUT="${KAFKA_LOCAL_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_LOCAL_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_LOCAL_HEAP_OPTS:--Xms256m -Xmx512m}"
HOST=127.0.0.1
MVN="${MVN:-mvn}"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

CP_FILE="$DIR/classpath.txt"
CP_KEY="$DIR/classpath.key"
DATA="$DIR/data"
CONF="$DIR/conf"
LOGS="$DIR/logs"
PID_FILE="$DIR/kafka.pid"

say() { echo "kafka-local: $*"; }
die() { echo "kafka-local: $*" >&2; exit 1; }

for p in "$PORT" "$CPORT"; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port '$p'"; fi
done
[ "$PORT" != "$CPORT" ] || die "KAFKA_LOCAL_PORT and KAFKA_LOCAL_CONTROLLER_PORT must differ"
if [ -n "$SPORT" ]; then
  if ! [[ "$SPORT" =~ ^[0-9]+$ ]] || ((SPORT < 1 || SPORT > 65535)); then die "bad port '$SPORT'"; fi
  [ "$SPORT" != "$PORT" ] && [ "$SPORT" != "$CPORT" ] || die "KAFKA_LOCAL_SASL_SSL_PORT must differ from the other ports"
  [ -f "$TLS_PEM" ] || die "KAFKA_LOCAL_SASL_SSL_PORT needs KAFKA_LOCAL_TLS_PEM, a PEM file with the broker's key and certificate chain"
fi
[[ "$START_TIMEOUT" =~ ^[0-9]+$ && "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "timeouts must be whole seconds"

# One start/stop/reset at a time per KAFKA_LOCAL_DIR.
lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "another kafka-local command holds $DIR/.lock"
}

# --- classpath ------------------------------------------------------------

pom_key() { sha256sum "$POM" | cut -d' ' -f1; }

classpath_ok() {
  [ -s "$CP_FILE" ] && [ -f "$CP_KEY" ] && [ "$(cat "$CP_KEY")" = "$(pom_key)" ] || return 1
  local jar
  local -a jars
  IFS=: read -r -a jars <"$CP_FILE" || true
  for jar in "${jars[@]}"; do [ -f "$jar" ] || return 1; done
}

resolve_classpath() {
  classpath_ok && return 0
  command -v "$MVN" >/dev/null || die "Maven ($MVN) not found; it resolves Kafka from Maven Central"
  mkdir -p "$DIR"
  local tmp="$CP_FILE.tmp" mlog="$DIR/maven.log"
  local -a args=(-q -B -Dstyle.color=never -f "$POM" dependency:build-classpath
    -Dmdep.outputFile="$tmp" -Dmdep.includeScope=runtime)
  # Offline first: instant when ~/.m2 already holds everything, and works with
  # no network. Online only when something is missing.
  say "resolving Kafka's classpath with Maven (first run downloads ~70 MB from Maven Central)"
  if ! "$MVN" -o "${args[@]}" >"$mlog" 2>&1; then
    "$MVN" "${args[@]}" >"$mlog" 2>&1 || { tail -n 30 "$mlog" >&2; die "Maven could not resolve $POM (log: $mlog)"; }
  fi
  [ -s "$tmp" ] || die "Maven wrote no classpath (log: $mlog)"
  mv "$tmp" "$CP_FILE"
  pom_key >"$CP_KEY"
}

# --- configuration ----------------------------------------------------------

write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  local listeners="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT"
  local map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [ -n "$SPORT" ]; then
    listeners="$listeners,SECURE://$HOST:$SPORT"
    map="$map,SECURE:SASL_SSL"
  fi
  cat >"$CONF/server.properties" <<EOF
# Generated by scripts/kafka-local.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=$listeners
advertised.listeners=$listeners
listener.security.protocol.map=$map
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
# A crashed instance's open transaction is aborted within ~2 s of its
# timeout (default 10 s), so the instance taking its partitions over waits
# less (exactly-once failover).
transaction.abort.timed.out.transaction.cleanup.interval.ms=2000
# A deleted topic's files are removed 1 s after the deletion (default 60 s),
# so that \`epitrace purge\` can verify the data is gone from disk promptly.
file.delete.delay.ms=1000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  if [ -n "$SPORT" ]; then
    cat >>"$CONF/server.properties" <<EOF
# The secured listener (KAFKA_LOCAL_SASL_SSL_PORT) and the ACL authorizer.
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.secure.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.ssl.keystore.type=PEM
listener.name.secure.ssl.keystore.location=$TLS_PEM
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
  fi
  cat >"$CONF/log4j2.properties" <<EOF
# Broker logging: INFO to logs/server.log, rolled at 20 MB, 3 kept.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $LOGS/server.log
appender.file.filePattern = $LOGS/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.zk.name = org.apache.zookeeper
logger.zk.level = warn
EOF
  cat >"$CONF/tools-log4j2.properties" <<EOF
# CLI tools: warnings and errors to stderr.
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF
  cat >"$CONF/admin.properties" <<EOF
# Admin client settings for the readiness check: fail fast, retry in the script.
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# --- process ----------------------------------------------------------------

# The pid in the pid file, if that process is alive and is our broker.
broker_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be kafka.Kafka on our config.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONF/server.properties" || return 1
  echo "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# True when 127.0.0.1:$PORT answers a Kafka ApiVersions request (v0, no JVM):
# the reply must carry our correlation id and error code 0.
api_versions_ok() {
  local reply
  # shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
  reply="$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    # size=21, api_key=18 (ApiVersions), api_version=0, correlation_id=0x45505452, client_id="kafka-local"
    printf "\x00\x00\x00\x15\x00\x12\x00\x00\x45\x50\x54\x52\x00\x0bkafka-local" >&3
    head -c 10 <&3 | od -An -tx1 | tr -d " \n"
  ' "$HOST" "$PORT" 2>/dev/null)" || return 1
  # 4 bytes size, then correlation id 45505452, then error_code 0000.
  [ "${reply:8:12}" = "455054520000" ]
}

# A JVM for Kafka's CLI classes: small heap, fast start, warnings to stderr.
tool_jvm() {
  TOOL_JVM=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" -cp "$(cat "$CP_FILE")")
}
java_tool() {
  tool_jvm
  "${TOOL_JVM[@]}" "$@"
}

# The real check: Kafka's own admin client lists topics (metadata served).
admin_ok() {
  tool_jvm
  timeout 30 "${TOOL_JVM[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" \
    --command-config "$CONF/admin.properties" --list >/dev/null 2>&1
}

show_logs() {
  local f
  for f in "$LOGS/kafka.out" "$LOGS/server.log"; do
    [ -s "$f" ] || continue
    echo "---- tail of $f" >&2
    tail -n 40 "$f" >&2
  done
}

format_storage() {
  [ -f "$DATA/meta.properties" ] && return 0
  local id
  # A random cluster id, as 'kafka-storage random-uuid' makes it (16 random
  # bytes, base64url, unpadded) without paying for a JVM; never starts with '-'.
  id=-
  while [[ "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)"
  done
  say "formatting a new KRaft cluster (id $id) in $DATA"
  java_tool kafka.tools.StorageTool format --config "$CONF/server.properties" --cluster-id "$id" \
    >"$LOGS/format.log" 2>&1 || { cat "$LOGS/format.log" >&2; die "storage format failed"; }
}

cmd_start() {
  lock
  local pid
  if pid="$(broker_pid)"; then
    if api_versions_ok; then
      say "already running (pid $pid) on $HOST:$PORT"
      return 0
    fi
    say "process $pid exists but does not answer on $HOST:$PORT; restarting it"
    stop_pid "$pid"
  fi
  rm -f "$PID_FILE"
  local p
  for p in "$PORT" "$CPORT"; do
    if port_open "$p"; then
      die "$HOST:$p is already in use by another process (set KAFKA_LOCAL_PORT / KAFKA_LOCAL_CONTROLLER_PORT)"
    fi
  done
  command -v "$JAVA" >/dev/null || die "java not found (JDK 17+ needed)"

  local t0=$SECONDS
  resolve_classpath
  write_config
  format_storage

  say "starting Kafka on $HOST:$PORT (controller $HOST:$CPORT, data $DIR)"
  echo "==== $(date -u +%FT%TZ) start" >>"$LOGS/kafka.out"
  # Own session (setsid): survives the calling shell, and a Ctrl-C in the
  # terminal does not reach it; stop it with 'stop'. The pid is written from
  # inside so it is java's own. 9>&-: the broker must not inherit the lock.
  # shellcheck disable=SC2016,SC2086 # $$ and $0 belong to the inner bash; HEAP_OPTS is split on purpose
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$CONF/log4j2.properties" \
    -Dkafka.logs.dir="$LOGS" -cp "$(cat "$CP_FILE")" \
    kafka.Kafka "$CONF/server.properties" \
    </dev/null >>"$LOGS/kafka.out" 2>&1 9>&- &
  local launcher=$!

  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$launcher" 2>/dev/null && ! broker_pid >/dev/null; then
      show_logs
      die "Kafka exited during start-up (logs: $LOGS)"
    fi
    if port_open "$PORT" && api_versions_ok && admin_ok; then
      say "up in $((SECONDS - t0)) s (pid $(cat "$PID_FILE")); brokers: $HOST:$PORT"
      return 0
    fi
    sleep 0.5
  done
  show_logs
  say "not answering after ${START_TIMEOUT} s; stopping it" >&2
  if pid="$(broker_pid)"; then stop_pid "$pid"; fi
  rm -f "$PID_FILE"
  die "start failed (logs: $LOGS)"
}

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  say "no clean shutdown after ${STOP_TIMEOUT} s; killing $pid" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  die "process $pid survived SIGKILL"
}

cmd_stop() {
  lock
  local pid
  if pid="$(broker_pid)"; then
    say "stopping Kafka (pid $pid)"
    stop_pid "$pid"
    say "stopped"
  else
    say "not running"
  fi
  rm -f "$PID_FILE"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    if api_versions_ok; then
      echo "running (pid $pid) on $HOST:$PORT, data $DIR"
      return 0
    fi
    echo "alive (pid $pid) but not answering on $HOST:$PORT"
    return 1
  fi
  echo "stopped"
  return 3
}

cmd_reset() {
  cmd_stop
  say "deleting $DATA, $LOGS and $CONF (the classpath stays cached)"
  rm -rf "$DATA" "$LOGS" "$CONF"
}

cmd_tool() {
  (($# >= 1)) || die "usage: $0 tool CLASS [ARGS...]"
  resolve_classpath
  [ -f "$CONF/tools-log4j2.properties" ] || write_config
  java_tool "$@"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
tool) shift; cmd_tool "$@" ;;
*)
  echo "usage: $0 start|stop|status|reset|tool CLASS [ARGS...]" >&2
  exit 2
  ;;
esac
