#!/usr/bin/env bash
# The chaos run (issue 15 §5), larger than CI's: `open131 serve` under a mixed
# load, killed with SIGKILL at seeded random moments and restarted, every
# invariant checked at the end (crates/open131/tests/chaos.rs). One node on
# SQLite, then two nodes on PostgreSQL; each prints its table line.
#   scripts/chaos.sh [operations] [kills] [seed]     (defaults: 2000 12 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_OPERATIONS=${1:-2000} CHAOS_KILLS=${2:-12} CHAOS_SEED=${3:-1}
OPEN131_TEST_POSTGRES=$(bash scripts/postgres.sh)
export OPEN131_TEST_POSTGRES
cargo build -q -p open131 --tests
for backend in sqlite postgres; do
  echo "== chaos on $backend: $CHAOS_OPERATIONS operations, $CHAOS_KILLS kills, seed $CHAOS_SEED"
  OPEN131_TEST_BACKEND=$backend cargo test -q -p open131 --test chaos -- --nocapture 2>&1 | grep -E '^chaos:|panicked|test result'
done
