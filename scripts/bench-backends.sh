#!/usr/bin/env bash
# KYC and payout creations (and status reads) on SQLite, on PostgreSQL with one
# node and with two nodes, in one run on this machine, with the same load
# generator (`open131 bench`, requests pre-signed outside the timed window).
#
#   bash scripts/bench-backends.sh                    # builds the release binary
#   CHECKS=20000 PAYOUTS=10000 CONC=64 bash scripts/bench-backends.sh
#
# PostgreSQL comes from scripts/postgres.sh (127.0.0.1:5432); each PostgreSQL
# run gets a fresh database. Load goes to 127.0.0.1 only and every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKS="${CHECKS:-20000}"; KYC_READS="${KYC_READS:-50000}"
PAYOUTS="${PAYOUTS:-10000}"; PAYOUT_READS="${PAYOUT_READS:-20000}"; CONC="${CONC:-64}"
# Seconds between the KYC and the payout scenarios: the verifier finishes the
# checks first (as in bench-ceiling.sh), so each scenario is measured alone.
PAUSE_S="${PAUSE_S:-10}"
BIN="${OPEN131_BIN:-target/release/open131}"
[ -n "${OPEN131_BIN:-}" ] || cargo build --release -q
ADMIN=$(bash scripts/postgres.sh)
WORK="$(mktemp -d)"; PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

fresh_db() {
  local name="open131_bench_$(date +%s%N)"
  psql "$ADMIN" -qc "CREATE DATABASE $name" >/dev/null
  echo "${ADMIN%/*}/$name"
}
# start DIR [DATABASE_URL]: starts a node (in this shell, so cleanup knows
# its pid) and sets URL to its address.
start() {
  local dir="$1" db="${2:-}" log="$1.log"
  mkdir -p "$dir"
  OPEN131_DATABASE_URL="$db" OPEN131_LOG=warn "$BIN" --data-dir "$dir" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  echo "node in $dir did not start: $(cat "$log")" >&2; return 1
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
# bench TITLE DIR DATABASE_URL URLS
bench() {
  echo "== $1"
  OPEN131_DATABASE_URL="$3" "$BIN" --data-dir "$2" bench kyc --url "$4" --checks "$CHECKS" --reads "$KYC_READS" --concurrency "$CONC" | grep -v '^pre-signed'
  sleep "$PAUSE_S"
  OPEN131_DATABASE_URL="$3" "$BIN" --data-dir "$2" bench payouts --url "$4" --payouts "$PAYOUTS" --reads "$PAYOUT_READS" --concurrency "$CONC" | grep -v '^pre-signed'
}

for backend in ${BACKENDS:-sqlite pg1 pg2}; do
  case "$backend" in
    sqlite) start "$WORK/sqlite"; bench "SQLite, one node" "$WORK/sqlite" "" "$URL" ;;
    pg1) db=$(fresh_db); start "$WORK/pg1" "$db"; bench "PostgreSQL, one node" "$WORK/pg1" "$db" "$URL" ;;
    pg2) db=$(fresh_db); start "$WORK/pg2a" "$db"; a=$URL; start "$WORK/pg2b" "$db"
         bench "PostgreSQL, two nodes" "$WORK/pg2a" "$db" "$a,$URL" ;;
  esac
  stop_all
done
