#!/usr/bin/env bash
# Installs what building and testing epitrace needs on a Debian machine that
# has only the base toolchains (Rust by rustup, JDK 17, Maven, gcc, cmake).
# Idempotent: installs only what is missing. Run as root (CI) or with sudo.
set -euo pipefail

need_apt=()
# libclang-dev: bindgen for rocksdb's and librdkafka's bindings.
# cmake, g++, make: building RocksDB and librdkafka from source.
# pkg-config, zlib1g-dev: librdkafka (its other codecs and RocksDB's are vendored).
# default-jre-headless, maven: the local Kafka broker (scripts/kafka-local.sh)
# runs from Maven Central jars; installed only when java/mvn are missing.
for pkg in libclang-dev cmake g++ make pkg-config zlib1g-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if ((${#need_apt[@]})); then
  echo "bootstrap: installing ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  # rustup puts cargo here; CI may start with a PATH that lacks it.
  # shellcheck disable=SC1091
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "bootstrap: cargo not found (install Rust with rustup)" >&2; exit 1; }
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
echo "bootstrap: ok ($(cargo --version))"
