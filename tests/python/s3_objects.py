#!/usr/bin/env python3
"""Put and delete objects on an S3 server, for the tests and benches.

    s3_objects.py ENDPOINT BUCKET < ops.json

ops.json: {"create_bucket": true, "put": {"key": "text", ...}, "delete": ["key", ...],
           "generate": {"prefix": "docs/", "count": 1050, "size": 200}}
`generate` puts COUNT objects PREFIX{i:05}.txt of about SIZE bytes, each different.
Prints the number of objects put and deleted.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
ops = json.load(sys.stdin)
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
if ops.get("create_bucket"):
    s3.create_bucket(Bucket=bucket)
puts = dict(ops.get("put", {}))
gen = ops.get("generate")
if gen:
    for i in range(gen["count"]):
        words = " ".join(f"w{(i * 7 + j) % 997}" for j in range(gen["size"] // 5))
        puts[f"{gen['prefix']}{i:05}.txt"] = f"Document {i}\n\n{words}\n"
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1].encode()),
                  puts.items()))
    list(pool.map(lambda k: s3.delete_object(Bucket=bucket, Key=k), ops.get("delete", [])))
print(len(puts), len(ops.get("delete", [])))
