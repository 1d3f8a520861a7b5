#!/usr/bin/env python3
"""Read sluice's online features back through Feast: apply the repo sluice wrote,
then get_online_features against its Redis. Prints one JSON list, a dict per
entity row (the entity keys and each feature, None where Feast has nothing).

    python3 tests/python/feast_online.py REPO VIEW ENTITY_ROWS_JSON FEATURE...
"""
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from feast import FeatureStore
from feast.repo_config import load_repo_config
from feast.repo_operations import apply_total


def plain(v):
    if isinstance(v, datetime):
        return int(v.timestamp())
    return v


def main():
    repo, view, rows, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
    os.chdir(repo)
    sys.path.insert(0, repo)
    config = load_repo_config(Path(repo), Path(repo) / "feature_store.yaml")
    apply_total(config, Path(repo), skip_source_validation=True)
    store = FeatureStore(repo_path=repo)
    got = store.get_online_features(
        features=[f"{view}:{f}" for f in features], entity_rows=rows
    ).to_dict()
    n = len(rows)
    print(json.dumps([{k: plain(v[i]) for k, v in got.items()} for i in range(n)]))


if __name__ == "__main__":
    main()
