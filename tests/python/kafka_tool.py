#!/usr/bin/env python3
"""Kafka helpers for the tests and benches, on confluent-kafka.

    kafka_tool.py BROKERS create TOPIC PARTITIONS
    kafka_tool.py BROKERS produce TOPIC < messages.jsonl
        each line: {"key": str|null, "value": str|null, "headers": {..}, "partition": int,
                    "timestamp": ms}
        a null value is a tombstone. Single-record batches (batch.num.messages=1,
        linger.ms=0): tansu mishandles multi-record producer batches.
    kafka_tool.py BROKERS generate TOPIC COUNT SIZE
        COUNT messages doc-N of about SIZE bytes of text, round-robin over the
        partitions, still one record per producer batch but many in flight
    kafka_tool.py BROKERS consume TOPIC
        prints every message from the start as {"key", "value", "partition", "offset"}
    kafka_tool.py BROKERS committed GROUP TOPIC
        prints {"PARTITION": OFFSET} the group has committed (-1001: none)
"""
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

brokers, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]

if cmd == "create":
    topic, partitions = args[0], int(args[1])
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(timeout=30)
elif cmd == "produce":
    topic = args[0]
    p = Producer({"bootstrap.servers": brokers, "batch.num.messages": 1, "linger.ms": 0,
                  "enable.idempotence": False})
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        kw = {}
        if m.get("partition") is not None:
            kw["partition"] = m["partition"]
        if m.get("timestamp") is not None:
            kw["timestamp"] = m["timestamp"]
        value = m.get("value")
        p.produce(topic, key=m.get("key"), value=None if value is None else value.encode(),
                  headers=list((m.get("headers") or {}).items()), **kw)
        # One record in flight at a time keeps every producer batch at one record.
        p.flush(30)
        n += 1
    print(n)
elif cmd == "generate":
    topic, count, size = args[0], int(args[1]), int(args[2])
    p = Producer({"bootstrap.servers": brokers, "batch.num.messages": 1, "linger.ms": 0,
                  "enable.idempotence": False, "queue.buffering.max.messages": 100000})
    parts = len(p.list_topics(topic, timeout=30).topics[topic].partitions)
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    for i in range(count):
        body = " ".join(words[(i + j) % len(words)] for j in range(size // 6))
        while True:
            try:
                p.produce(topic, key=f"doc-{i:08}", value=f"Document {i}. {body}".encode(),
                          partition=i % parts)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(120)
    print(count)
elif cmd == "consume":
    topic = args[0]
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{topic}-{id(args)}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    meta = c.list_topics(topic, timeout=30).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
    c.assign(parts)
    ends = {}
    for tp in parts:
        lo, hi = c.get_watermark_offsets(tp, timeout=30)
        ends[tp.partition] = hi
    pos = {tp.partition: 0 for tp in parts}
    while any(pos[p] < ends[p] for p in pos):
        m = c.poll(5)
        if m is None:
            break
        if m.error():
            continue
        pos[m.partition()] = m.offset() + 1
        print(json.dumps({"key": m.key().decode() if m.key() else None,
                          "value": m.value().decode() if m.value() is not None else None,
                          "partition": m.partition(), "offset": m.offset()}))
    c.close()
elif cmd == "committed":
    group, topic = args
    c = Consumer({"bootstrap.servers": brokers, "group.id": group})
    meta = c.list_topics(topic, timeout=30).topics[topic]
    got = c.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=30)
    print(json.dumps({str(tp.partition): tp.offset for tp in got}))
    c.close()
else:
    sys.exit(f"unknown command {cmd}")
