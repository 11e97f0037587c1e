#!/usr/bin/env bash
# Runs every cargo-fuzz target in this folder for SECONDS each (default 60), one after the other.
#
#   fuzz/run.sh 300          # five minutes per target
#
# Needs a nightly toolchain (libFuzzer and the sanitizers are nightly-only) and cargo-fuzz,
# which it installs if missing. A crash stops the run; the input that caused it is kept in
# fuzz/artifacts/TARGET/ and can be replayed with `cargo +nightly fuzz run TARGET FILE`.
# The corpus grows in fuzz/corpus/TARGET/ across runs. Not part of CI: the property tests in
# auth-service/tests/api/properties.rs cover the same entry points there.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS per target]" >&2
    exit 2
    ;;
esac
cd "$(dirname "$0")"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "cargo-fuzz needs a nightly toolchain; install it with: rustup toolchain install nightly" >&2
    echo "(on stable, the property tests cover the same entry points: cargo test -p auth-service --test api properties::)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

for target in $(cargo +nightly fuzz list); do
    echo "== fuzzing $target for ${seconds}s" >&2
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=8192
done
echo "== no crash in any target" >&2
