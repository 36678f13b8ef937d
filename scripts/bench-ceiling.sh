#!/usr/bin/env bash
# Issue 12's figures in one run: each write scenario of `open131 bench` beside
# the ceiling server (../shared/bench/ceiling: a minimal axum server that
# verifies the signature and appends one row to SQLite with group commit),
# sent the same pre-signed requests by the same load generator, then
# webhook deliveries beside `openssl speed`'s two-core signing rate, and the
# server's peak resident memory. ROUNDS rounds, each on fresh data. Each
# phase with a ratio also prints both servers' CPU time per request (/proc):
# steadier than the ratio, which moves with the load generator's share.
#
#   bash scripts/bench-ceiling.sh                         # builds both
#   OPEN131_BIN=target/release/open131 ROUNDS=3 bash scripts/bench-ceiling.sh
#
# Needs ../shared/bench/ceiling (the workspace's shared folder) and openssl.
# Load goes to 127.0.0.1 only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; SESSIONS="${SESSIONS:-100000}"; CHECKS="${CHECKS:-50000}"
PAYOUTS="${PAYOUTS:-20000}"; CONC="${CONC:-64}"
# Seconds between scenarios: the verifier and the bank's timers finish the
# last scenario's work, which would otherwise slow the ceiling's next phase.
PAUSE_S="${PAUSE_S:-10}"
CEILING_SRC="${CEILING_SRC:-../shared/bench/ceiling}"
CEIL_TARGET="${CEILING_TARGET_DIR:-/tmp/open131-ceiling-target}"
(cd "$CEILING_SRC" && CARGO_TARGET_DIR="$CEIL_TARGET" cargo build --release -q --locked)
CEIL="$CEIL_TARGET/release/ceiling"
BIN="${OPEN131_BIN:-target/release/open131}"
[ -n "${OPEN131_BIN:-}" ] || cargo build --release -q
WORK="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  rm -rf "$WORK/data" "$WORK"/ceiling.db*; mkdir -p "$WORK/data"
  op=$(port); OPEN131_LOG=warn "$BIN" --data-dir "$WORK/data" serve --listen "127.0.0.1:$op" >"$WORK/open131.log" 2>&1 &
  server=$!; PIDS+=("$server")
  wait_up "http://127.0.0.1:$op/"
  openssl rsa -in "$WORK/data/demo.key.pem" -pubout -out "$WORK/demo.pub" 2>/dev/null
  cp=$(port); "$CEIL" serve --port "$cp" --verify awslc --pubkey "$WORK/demo.pub" --db "$WORK/ceiling.db" \
    --sync full --batch-max 1024 --max-seconds 900 >"$WORK/ceiling.log" 2>&1 & ceil=$!; PIDS+=("$ceil")
  wait_up "http://127.0.0.1:$cp/"
  run() { "$BIN" --data-dir "$WORK/data" bench "$@" --url "http://127.0.0.1:$op" --ceiling "http://127.0.0.1:$cp" \
    --concurrency "$CONC" --server-pid "$server" --ceiling-pid "$ceil" | grep -v '^pre-signed'; }
  run sessions --sessions "$SESSIONS"; sleep "$PAUSE_S"
  run kyc --checks "$CHECKS" --reads 1; sleep "$PAUSE_S"
  run payouts --payouts "$PAYOUTS" --reads 1
  echo "open131 peak resident memory: $(awk '/VmHWM/{printf "%.1f MiB", $2/1024}' "/proc/$server/status")"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=()
done
