#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds (default 20). Stable toolchain, so no
# sanitizer (`-s none`); a crash, a panic or a timeout fails the run and leaves the input in
# fuzz/artifacts/<target>/. The committed seeds (fuzz/seeds/<target>/) are read as a second
# corpus directory; new inputs go to fuzz/corpus/<target>/ (not committed).
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in $(cargo fuzz list); do
  echo "--- fuzz $t for ${secs}s"
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  cargo fuzz run "$t" -s none "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -dict=http.dict 2>&1 | tail -4
done
