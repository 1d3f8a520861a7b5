#!/usr/bin/env python3
"""Parse a Prometheus text scrape (stdin) with prometheus_client's own parser and
print every sample as one JSON line: {"family", "type", "name", "labels", "value"}.
A scrape the parser rejects exits non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name,
                          "labels": s.labels, "value": s.value}))
