#!/usr/bin/env bash
# Fuzzes every target (fuzz/fuzz_targets; harnesses in crates/open131-fuzz)
# for a bounded time each, from its committed seed corpus. Installs
# cargo-fuzz when missing.
#   scripts/fuzz.sh [seconds per target]      (default 60; CI runs 10)
# New inputs go to a scratch corpus, not the committed one. A crash stops the
# run and is left in fuzz/artifacts/<target>/: fix it, then copy the input to
# fuzz/regressions/<target>/ so the ordinary tests replay it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz wants nightly's flags: rustup's nightly when the machine has
# one, else the one toolchain with its unstable flags allowed.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi
fuzz build -O >&2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(ls fuzz/fuzz_targets | sed 's/\.rs$//'); do
  mkdir -p "$scratch/$target"
  fuzz run -O "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>"$scratch/$target.log" ||
    { tail -40 "$scratch/$target.log"; echo "fuzz.sh: $target crashed (fuzz/artifacts/$target/)"; exit 1; }
  runs=$(grep -m1 'stat::number_of_executed_units' "$scratch/$target.log" | awk '{print $2}')
  echo "fuzz: $target ${runs:-?} runs in ${seconds}s, $(ls "$scratch/$target" | wc -l) new inputs"
done
