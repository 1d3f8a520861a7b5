#!/usr/bin/env bash
# Set up, then run the whole test suite with cargo-nextest.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash scripts/setup.sh
say "building and running the tests"
cargo nextest run --workspace --no-fail-fast "$@"
