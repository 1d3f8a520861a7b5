#!/usr/bin/env bash
# Formatting and clippy, as required before a commit.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
