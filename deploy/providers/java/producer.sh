#!/usr/bin/env bash
# epitrace's Java producer kit: builds the runnable jar on first use, then runs it with every
# argument passed through.
#
#   ./producer.sh --help
#   ./producer.sh --self-test
#   ./producer.sh --feed telecom --input telecom.csv --key authority.key --brokers kafka:9092
#   ./producer.sh dead-letters --provider telco-a --brokers kafka:9092   (reads pipeline.deadletter.telco-a)
#
# Build: Maven, offline first (`mvn -o`: instant and network-free once ~/.m2 holds the jars),
# online (Maven Central) when that fails. The jar is rebuilt only when pom.xml or a file under
# src/ changed: their SHA-256 is kept in target/.source-hash. Build output (and its log,
# target/build.log) goes to target/, which git ignores.
#
# Environment: JAVA_HOME (else `java` on the PATH; JDK 17+), MVN (default mvn),
# EPITRACE_PRODUCER_JAVA_OPTS (extra JVM options, e.g. -Xmx512m).
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET="$KIT/target"
JAR="$TARGET/epitrace-producer.jar"
STAMP="$TARGET/.source-hash"
LOG="$TARGET/build.log"
MVN="${MVN:-mvn}"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

say() { echo "producer.sh: $*" >&2; }
die() { say "$*"; exit 1; }

command -v "$JAVA" >/dev/null 2>&1 || die "no java found: install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

# One hash over the build's inputs: pom.xml and every file under src/ (names and contents).
source_hash() {
  (
    cd "$KIT"
    find pom.xml src -type f | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s  %s\n' "$(sha256 <"$f" | cut -d' ' -f1)" "$f"
    done | sha256 | cut -d' ' -f1
  )
}

build() {
  command -v "$MVN" >/dev/null 2>&1 || die "Maven ($MVN) is needed to build the kit once: install it (e.g. apt-get install maven) or set MVN"
  mkdir -p "$TARGET"
  local started=$SECONDS
  say "building the producer jar (Maven, offline first; log: target/build.log)"
  if ! "$MVN" -B -o -f "$KIT/pom.xml" -DskipTests package >"$LOG" 2>&1; then
    say "offline build failed (jars missing from ~/.m2?); building online from Maven Central"
    if ! "$MVN" -B -f "$KIT/pom.xml" -DskipTests package >"$LOG" 2>&1; then
      tail -n 30 "$LOG" >&2 || true
      die "build failed; see $LOG"
    fi
  fi
  [ -f "$JAR" ] || die "build finished but $JAR is missing; see $LOG"
  say "built target/epitrace-producer.jar in $((SECONDS - started)) s"
}

want="$(source_hash)"
if [ ! -f "$JAR" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  mkdir -p "$TARGET"
  # One build at a time (where flock exists); a second launcher waits and reuses the result.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$TARGET/.build.lock"
    flock -w 600 9 || die "another build holds $TARGET/.build.lock"
  fi
  if [ ! -f "$JAR" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    rm -f "$STAMP"
    build
    echo "$want" >"$STAMP"
  fi
  if command -v flock >/dev/null 2>&1; then exec 9>&-; fi
fi

# shellcheck disable=SC2086 # EPITRACE_PRODUCER_JAVA_OPTS is a list of options
exec "$JAVA" ${EPITRACE_PRODUCER_JAVA_OPTS:-} -Depitrace.kit.dir="$KIT" -jar "$JAR" "$@"
