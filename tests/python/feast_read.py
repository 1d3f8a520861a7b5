#!/usr/bin/env python3
"""Read sluice's offline features back through Feast: apply the repo sluice wrote,
then a point-in-time join with get_historical_features. Prints JSON
{doc_id: chunk_count}.

    python3 tests/python/feast_read.py REPO VIEW DOC_ID...
"""
import json
import os
import sys
from datetime import datetime, timezone

import pandas as pd
from feast import FeatureStore
from feast.repo_operations import apply_total
from feast.repo_config import load_repo_config
from pathlib import Path


def main():
    repo, view, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.chdir(repo)
    sys.path.insert(0, repo)
    config = load_repo_config(Path(repo), Path(repo) / "feature_store.yaml")
    apply_total(config, Path(repo), skip_source_validation=True)
    store = FeatureStore(repo_path=repo)
    entities = pd.DataFrame({"doc_id": docs, "event_timestamp": [datetime.now(timezone.utc)] * len(docs)})
    df = store.get_historical_features(entity_df=entities, features=[f"{view}:chunk_count"]).to_df()
    print(json.dumps({r["doc_id"]: int(r["chunk_count"]) for _, r in df.iterrows()}))


if __name__ == "__main__":
    main()
