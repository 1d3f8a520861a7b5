#!/usr/bin/env bash
# Fetch the Python 3.11 docs from Debian (plain-text reST sources, about 11 MB) into
# a folder for the chunk bench, and print the folder. Uses apt only.
set -euo pipefail
DEST="${1:-$HOME/.cache/sluice-bench/python-docs}"
if [ ! -d "$DEST" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download python3.11-doc >/dev/null && dpkg -x python3.11-doc_*.deb x)
  mkdir -p "$DEST"
  find "$tmp/x" -name '*.txt' -path '*_sources*' -exec cp --parents {} "$DEST" \; 2>/dev/null || true
  rm -rf "$tmp"
fi
echo "$DEST"
