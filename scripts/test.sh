#!/usr/bin/env bash
# Set up, then run the whole test suite with cargo-nextest.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash scripts/setup.sh
# The test runner (the quickstart does not need it). A debug build: it
# compiles in half the time of a release one (236 s against 502 s cold on a
# 2-core machine) and adds about a second to running the suite.
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/nextest" cargo install cargo-nextest --version 0.9.151 --locked --debug
fi
# The tests' second embedding model (an fp32 graph built from the pinned weights).
python3 scripts/fetch_models.py --second-model
# Headless Chromium and its WebDriver for the console's browser test (Debian).
apt_install chromium chromium-driver
# buildah, podman and a local bookworm base for the image test (Debian).
bash scripts/image_base.sh >/dev/null
# PostgreSQL + pgvector, Redis and Feast for the sink tests; stopped at the end.
bash scripts/services.sh up >/dev/null
trap 'bash scripts/services.sh down' EXIT
say "building and running the tests"
cargo nextest run --workspace --no-fail-fast "$@"
