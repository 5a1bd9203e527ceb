#!/usr/bin/env bash
# Checks, and installs when it can, what building and testing epitrace needs
# on a Debian machine that has only the base toolchains.
#
#   scripts/bootstrap.sh [--check] [--quiet] [build|test|all]
#
#   build   what `make demo` needs: Rust (cargo, rustup), a C/C++ compiler,
#           make, cmake, pkg-config, zlib headers, libclang (bindgen) —
#           RocksDB and librdkafka are compiled from source
#   test    build + rustfmt and clippy + Java 17 and Maven (the local Kafka
#           broker of scripts/kafka-local.sh runs from Maven Central jars)
#           + a TrueType font (DejaVu Sans: the plots of `epitrace eval`)
#   all     everything (the default; `make bootstrap`)
#
# Missing Debian packages are installed with apt-get when this runs as root
# or with password-less sudo; missing rustup components with rustup. When
# something cannot be installed (or with --check), it prints ONE line naming
# what is missing and the command that installs it, and exits 1 — never a
# build's backtrace. Silent when everything is there (--quiet), otherwise
# one "ok" line. Idempotent: installs only what is missing.
set -euo pipefail

check_only=0
quiet=0
scope=all
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --quiet) quiet=1 ;;
    build | test | all) scope="$arg" ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bootstrap: unknown argument '$arg' (see --help)" >&2
      exit 2
      ;;
  esac
done

# rustup puts cargo in ~/.cargo/bin; a fresh shell (or CI) may lack it.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

have() { command -v "$1" >/dev/null 2>&1; }

# libclang as bindgen (clang-sys) finds it: LIBCLANG_PATH, then the usual
# Debian locations. Only libclang.so* and libclang-N*.so* count: clang-sys
# does not load libclang-cpp.so (the C++ library, which other packages
# install without libclang itself).
have_libclang() {
  local d
  for d in ${LIBCLANG_PATH:+"$LIBCLANG_PATH"} /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64 /usr/lib; do
    compgen -G "$d/libclang.so*" >/dev/null 2>&1 && return 0
    compgen -G "$d/libclang-[0-9]*.so*" >/dev/null 2>&1 && return 0
  done
  return 1
}

have_header() {
  local h="$1" d
  for d in /usr/include /usr/local/include /usr/include/*-linux-gnu; do
    [ -f "$d/$h" ] && return 0
  done
  return 1
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

# Each missing piece: its name (for the message) and its Debian package.
missing=()
packages=()
need() {
  missing+=("$1")
  if [ -n "${2:-}" ]; then
    local p
    for p in "${packages[@]}"; do [ "$p" = "$2" ] && return 0; done
    packages+=("$2")
  fi
  return 0
}

check() {
  missing=()
  packages=()
  have cargo || need "cargo (Rust)"
  have cc || need "a C compiler (cc)" gcc
  have c++ || need "a C++ compiler (c++)" g++
  have make || need make make
  have cmake || need cmake cmake
  have pkg-config || need pkg-config pkg-config
  have_header zlib.h || need "zlib headers" zlib1g-dev
  have_header openssl/ssl.h || need "OpenSSL headers" libssl-dev
  have_libclang || need libclang libclang-dev
  if [ "$scope" != build ]; then
    if have rustup && have cargo; then
      local c
      for c in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || need "$c (rustup component)"
      done
    fi
    if ! have java; then
      need "java (17+)" default-jdk-headless
    elif [ "$(java_major)" -lt 17 ] 2>/dev/null; then
      need "java 17+ (found $(java_major))" default-jdk-headless
    fi
    have mvn || need "mvn (Maven)" maven
    have openssl || need "openssl (test certificates)" openssl
    have curl || need "curl (the local Schema Registry's health check)" curl
    have javac || need "javac (a JDK 17+: the Java producer kit)" default-jdk-headless
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] ||
      need "a TrueType font (the plots of epitrace eval)" fonts-dejavu-core
    have python3 || need "python3 (the Python producer kit)" python3
    python3 -m pip --version >/dev/null 2>&1 || need "pip (the Python producer kit's packages)" python3-pip
  fi
}

can_install() {
  have apt-get || return 1
  [ "$(id -u)" -eq 0 ] && return 0
  have sudo && sudo -n true 2>/dev/null
}

install_missing() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  if ((${#packages[@]})); then
    echo "bootstrap: installing ${packages[*]}" >&2
    "${sudo_cmd[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
  fi
}

install_components() {
  local c
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
  done
}

# The one line a newcomer sees when something cannot be installed here.
explain() {
  local list cmd=""
  list="$(printf '%s, ' "${missing[@]}")"
  list="${list%, }"
  if ((${#packages[@]})); then
    cmd="apt-get install -y ${packages[*]}"
    [ "$(id -u)" -eq 0 ] || cmd="sudo $cmd"
  fi
  local rust=""
  for m in "${missing[@]}"; do
    case "$m" in
      "cargo (Rust)") rust="Rust from https://rustup.rs (then open a new shell)" ;;
      *"rustup component"*) [ -n "$rust" ] || rust="rustup component add rustfmt clippy" ;;
    esac
  done
  local how="$cmd"
  [ -n "$rust" ] && how="${how:+$how; }$rust"
  echo "prerequisites: missing $list — install with: $how" >&2
}

check
if ((${#missing[@]})); then
  if ((check_only)); then
    explain
    exit 1
  fi
  if ((${#packages[@]})) && can_install; then
    install_missing
  fi
  if have rustup && [ "$scope" != build ]; then
    install_components
  fi
  check
  if ((${#missing[@]})); then
    explain
    exit 1
  fi
fi
((quiet)) || echo "bootstrap: ok ($(cargo --version))"
