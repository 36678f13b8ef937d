#!/usr/bin/env bash
# The contract run (issue 13 §4): Schemathesis (from PyPI, pinned) against a
# running open131, over its own /openapi.json, a bounded number of cases per
# operation (default 5), with every main-API request signed by the hooks in
# scripts/schemathesis_hooks.py. Fails on a 5xx, an answer that does not
# match its schema, or a status the document does not name.
#   bash scripts/schemathesis.sh [cases per operation]
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-5}"
VENV="${SCHEMATHESIS_VENV:-target/schemathesis-venv}"
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5" "cryptography>=42"
fi
cargo build -q -p open131
BIN="${CARGO_TARGET_DIR:-target}/debug/open131"
WORK="$(mktemp -d)"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Up once it answers (it writes the demo key before it listens); at most 60 s.
for _ in $(seq 600); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/openapi.json', timeout=1)" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { echo "open131 exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$WORK/data/demo.key.pem" ] || { echo "open131 did not start within 60 s:" >&2; cat "$WORK/server.log" >&2; exit 1; }
export OPEN131_KEY="$WORK/data/demo.key.pem" SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts"
"$VENV/bin/st" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance \
  --max-examples "$CASES" --seed 131 --no-color
