#!/usr/bin/env bash
# A real Confluent-compatible Avro Schema Registry (Apicurio Registry 2.4.2,
# its `ccompat` API) on 127.0.0.1, for development, tests and CI, without
# Docker. Apicurio comes from Maven Central as a library jar; the Maven
# project deploy/schema-registry/ builds it into a runnable Quarkus
# application (~190 MB downloaded on first use; ~10 s to build warm). It
# needs a JDK 17+ and Maven. Storage is an H2 database file under
# REGISTRY_LOCAL_DIR/data: schemas and ids survive a restart, as a real
# registry's do; `reset` empties it.
#
#   scripts/registry-local.sh start    build (cached), start, wait until it answers
#   scripts/registry-local.sh stop     SIGTERM, wait, SIGKILL after a timeout
#   scripts/registry-local.sh status   exit 0 running and answering, 3 stopped, 1 alive but not answering
#   scripts/registry-local.sh reset    stop, delete the stored schemas: next start is an empty registry
#   scripts/registry-local.sh url      print the Confluent-compatible base URL
#   scripts/registry-local.sh build    build (cached) without starting
#
# Everything lives under REGISTRY_LOCAL_DIR (default <repo>/.registry-local,
# git-ignored): project/ (a copy of deploy/schema-registry, built there),
# build.key (the hash of what was built), data/, registry.log, registry.pid.
#
# Environment: REGISTRY_LOCAL_PORT (8081), REGISTRY_LOCAL_DIR,
# REGISTRY_LOCAL_START_TIMEOUT (90 s), REGISTRY_LOCAL_HEAP_OPTS
# (-Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1), JAVA_HOME, MVN (mvn).
# Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/deploy/schema-registry"
DIR="${REGISTRY_LOCAL_DIR:-$ROOT/.registry-local}"
PORT="${REGISTRY_LOCAL_PORT:-8081}"
START_TIMEOUT="${REGISTRY_LOCAL_START_TIMEOUT:-90}"
HEAP_OPTS="${REGISTRY_LOCAL_HEAP_OPTS:--Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
HOST=127.0.0.1
MVN="${MVN:-mvn}"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

PROJECT="$DIR/project"
RUNNER="$PROJECT/target/quarkus-app/quarkus-run.jar"
KEY_FILE="$DIR/build.key"
PID_FILE="$DIR/registry.pid"
DATA="$DIR/data"
LOG="$DIR/registry.log"
URL="http://$HOST:$PORT/apis/ccompat/v7"

say() { echo "registry-local: $*"; }
die() { echo "registry-local: $*" >&2; exit 1; }

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then die "bad port '$PORT'"; fi
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "REGISTRY_LOCAL_START_TIMEOUT must be whole seconds"

lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 300 9 || die "another registry-local command holds $DIR/.lock"
}

src_key() { (cd "$SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1; }

build() {
  if [ -f "$RUNNER" ] && [ -f "$KEY_FILE" ] && [ "$(cat "$KEY_FILE")" = "$(src_key)" ]; then
    return 0
  fi
  command -v "$MVN" >/dev/null || die "Maven ($MVN) not found; it builds the registry from Maven Central"
  rm -rf "$PROJECT"
  mkdir -p "$PROJECT"
  cp -R "$SRC/." "$PROJECT/"
  local mlog="$DIR/maven.log"
  # -DskipDefault: the Apicurio parent's profile that adds the Confluent and
  # jitpack repositories stays off; settings.xml sends everything to Central.
  local -a args=(-q -B -Dstyle.color=never -s "$PROJECT/settings.xml" -f "$PROJECT/pom.xml"
    -DskipDefault=true -DskipUiBuild=true -DskipTests package)
  say "building the registry with Maven (first run downloads ~190 MB from Maven Central)"
  if ! "$MVN" -o "${args[@]}" >"$mlog" 2>&1; then
    "$MVN" "${args[@]}" >"$mlog" 2>&1 || { tail -n 30 "$mlog" >&2; die "Maven could not build the registry (log: $mlog)"; }
  fi
  [ -f "$RUNNER" ] || die "Maven built no $RUNNER (log: $mlog)"
  src_key >"$KEY_FILE"
}

pid_alive() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

answers() { curl -sf --max-time 2 "$URL/subjects" >/dev/null 2>&1; }

status() {
  if ! pid_alive; then
    say "stopped"
    return 3
  fi
  if answers; then
    say "running (pid $(cat "$PID_FILE")) at $URL"
    return 0
  fi
  say "alive (pid $(cat "$PID_FILE")) but not answering at $URL"
  return 1
}

start() {
  lock
  if pid_alive; then
    answers && { say "already running at $URL"; return 0; }
    die "a registry process (pid $(cat "$PID_FILE")) is alive but not answering; stop it first"
  fi
  if curl -s --max-time 2 -o /dev/null "http://$HOST:$PORT/" 2>/dev/null; then
    die "port $PORT is taken by another process; set REGISTRY_LOCAL_PORT"
  fi
  build
  : >"$LOG"
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
  mkdir -p "$DATA"
  nohup "$JAVA" $HEAP_OPTS -Dquarkus.http.port="$PORT" -Dquarkus.http.host="$HOST" \
    -Dquarkus.datasource.jdbc.url="jdbc:h2:file:$DATA/registry" \
    -jar "$RUNNER" >>"$LOG" 2>&1 9>&- &
  echo $! >"$PID_FILE"
  local waited=0
  until answers; do
    pid_alive || { tail -n 30 "$LOG" >&2; die "the registry exited during start (log: $LOG)"; }
    ((waited >= START_TIMEOUT * 2)) && { tail -n 30 "$LOG" >&2; die "no answer at $URL after ${START_TIMEOUT}s (log: $LOG)"; }
    sleep 0.5
    waited=$((waited + 1))
  done
  say "running (pid $(cat "$PID_FILE")) at $URL"
}

stop() {
  lock
  if ! pid_alive; then
    rm -f "$PID_FILE"
    say "stopped"
    return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "no clean exit within 30 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "stopped"
}

reset() {
  stop
  rm -rf "$DATA"
  say "reset (stored schemas deleted)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  reset) reset ;;
  status) status ;;
  url) echo "$URL" ;;
  build) lock; build; say "built $RUNNER" ;;
  *) echo "usage: $0 start|stop|status|reset|url|build" >&2; exit 2 ;;
esac
