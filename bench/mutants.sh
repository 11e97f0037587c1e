#!/usr/bin/env bash
# Mutation testing of the domain rules (RELIABILITY.md, "Mutation testing"): plants one-line bugs
# in the rule files with cargo-mutants and reports which ones no test caught.
#
#   bench/mutants.sh            # the rules' unit tests only (about 20 minutes on 2 cores)
#   bench/mutants.sh --api      # the whole API suite per mutant (hours; needs TEST_DATABASE_URL
#                               # and TEST_REDIS_URL like the suite itself)
#
# Results go to target/mutants/mutants.out (caught.txt, missed.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null; then
    cargo install cargo-mutants --locked
fi

files=(
    auth-service/src/domain/refresh.rs
    auth-service/src/domain/session.rs
    auth-service/src/domain/revoker.rs
    auth-service/src/domain/limits/mod.rs
    auth-service/src/domain/password_policy.rs
    auth-service/src/domain/opaque_token.rs
)
args=()
for file in "${files[@]}"; do args+=(-f "$file"); done

if [[ "${1:-}" == "--api" ]]; then
    exec cargo mutants -p auth-service --no-shuffle "${args[@]}" -o target/mutants
fi
exec cargo mutants -p auth-service --no-shuffle "${args[@]}" -o target/mutants -- --lib
