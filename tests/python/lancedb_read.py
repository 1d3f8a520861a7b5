#!/usr/bin/env python3
"""Read a LanceDB table that sluice wrote with the Python `lancedb` package.
Prints JSON: the row count, the sorted chunk ids, and the top hit of a cosine
vector search for the vector given on stdin (a JSON list), with its distance.

    echo '[0.1, ...]' | python3 tests/python/lancedb_read.py URI TABLE [OPTIONS_JSON]

OPTIONS_JSON is LanceDB's storage_options (for s3://), as a JSON object.
"""
import json
import sys

import lancedb


def main():
    uri, table = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    vector = json.load(sys.stdin)
    t = lancedb.connect(uri, storage_options=options or None).open_table(table)
    ids = sorted(t.to_arrow().column("chunk_id").to_pylist())
    hit = t.search(vector).metric("cosine").limit(1).to_list()[0]
    print(json.dumps({"count": t.count_rows(), "ids": ids, "top": hit["chunk_id"], "distance": hit["_distance"]}))


if __name__ == "__main__":
    main()
