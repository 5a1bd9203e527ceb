#!/usr/bin/env bash
# epitrace's Python producer kit: installs the pinned requirements into .deps/
# next to this script on first use (again whenever requirements.txt changes),
# then runs epitrace_producer.py with every argument passed through.
#
#   ./producer.sh --feed telecom --input telecom.csv --key authority.key --brokers HOST:9092
#   ./producer.sh dead-letters --provider telco-a --brokers HOST:9092
#   ./producer.sh selftest
#   ./producer.sh --help
#
# Environment: PYTHON (default python3, 3.11 as pinned), PIP_INDEX_URL and the
# other pip variables for a private package mirror.
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
DEPS="$KIT/.deps"
STAMP="$DEPS/.requirements.sha256"

command -v "$PY" >/dev/null 2>&1 || { echo "producer.sh: $PY not found (set PYTHON to a Python 3.11 interpreter)" >&2; exit 1; }
want="$(sha256sum "$KIT/requirements.txt" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "producer.sh: installing the pinned requirements into $DEPS (once per requirements.txt)" >&2
  tmp="$DEPS.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  if ! PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-warn-script-location \
      --target "$tmp" -r "$KIT/requirements.txt" >&2; then
    echo "producer.sh: pip install failed (see above); nothing was changed in $DEPS" >&2
    exit 1
  fi
  echo "$want" > "$tmp/.requirements.sha256"
  rm -rf "$DEPS"
  mv "$tmp" "$DEPS"
  trap - EXIT
fi
export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$KIT/epitrace_producer.py" "$@"
