#!/usr/bin/env python3
"""Write signed webhook bodies for bench/replay.lua, one file per wrk thread.

Each line is ``<X-Hook-Signature> <body>``: the lowercase hex HMAC-SHA256 of the exact body
bytes, keyed with the prefix's secret, then the compact JSON body. Event bodies contain one
task-added event each, with a task gid and ``created_at`` that no other line repeats, so the
queue's deduplication keeps every one of them. The secret is read from the embedded database
of `autonumber serve`, where the webhook handshake stored it, and is never printed.
"""

import argparse
import datetime
import hashlib
import hmac
import sqlite3
import sys

HEARTBEAT = b'{"events":[]}'
PROJECT_GID = "1208300000000001"
FIRST_TASK_GID = 1209000000000000


def read_secret(database, prefix):
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = connection.execute(
            "SELECT secret FROM secrets WHERE prefix = ? ORDER BY created_at DESC LIMIT 1",
            (prefix,),
        ).fetchone()
    finally:
        connection.close()
    if row is None:
        sys.exit(f"make_bodies: no secret stored for prefix {prefix} in {database}; register the webhook first")
    return row[0].encode()


def event_body(index, start):
    created_at = start + datetime.timedelta(milliseconds=index)
    stamp = created_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created_at.microsecond // 1000:03d}Z"
    return (
        '{"events":[{"user":{"gid":"1208100000000001","resource_type":"user"},'
        f'"created_at":"{stamp}","action":"added",'
        f'"resource":{{"gid":"{FIRST_TASK_GID + index}","resource_type":"task","resource_subtype":"default_task"}},'
        f'"parent":{{"gid":"{PROJECT_GID}","resource_type":"project"}}}}]}}'
    ).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="autonumber.sqlite3 of the serve data directory")
    parser.add_argument("--prefix", default="BUG")
    parser.add_argument("--count", type=int, default=200_000, help="event bodies in all (ignored with --heartbeat)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads: one output file each")
    parser.add_argument("--heartbeat", action="store_true", help='write the heartbeat body {"events":[]} instead')
    parser.add_argument("--out", required=True, help="output path prefix; thread i reads OUT.i")
    args = parser.parse_args()

    secret = read_secret(args.database, args.prefix)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    outputs = [open(f"{args.out}.{i}", "wb") for i in range(args.threads)]
    try:
        if args.heartbeat:
            signature = hmac.new(secret, HEARTBEAT, hashlib.sha256).hexdigest().encode()
            for output in outputs:
                output.write(signature + b" " + HEARTBEAT + b"\n")
        else:
            for index in range(args.count):
                body = event_body(index, start)
                signature = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
                outputs[index % args.threads].write(signature + b" " + body + b"\n")
    finally:
        for output in outputs:
            output.close()


if __name__ == "__main__":
    main()
