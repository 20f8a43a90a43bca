#!/usr/bin/env python3
"""A minimal stand-in for the Asana API, for the load test in bench/load.sh.

It listens on 127.0.0.1 only and implements what `autonumber serve` and
`autonumber webhooks create` call during the load test:

- ``GET /tasks/{gid}`` returns a task named ``BUG-1: already numbered``, so the worker reads it
  and skips it without a rename.
- ``PUT /tasks/{gid}`` returns the same shape, with the requested name when there is one.
- ``POST /webhooks`` does Asana's handshake: it POSTs to the target with ``X-Hook-Secret``,
  checks that the receiver echoed the header with a 200, and returns 201 with the webhook and
  the secret, as Asana does.
- ``GET /stats`` returns the request counts and the distinct task gids that were read, so the
  load test can check that every acknowledged event was processed or is still queued.

The secret is a random throwaway value made per run. The server stops by itself after
``--max-seconds``.
"""

import argparse
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TASK_PATH = re.compile(r"^/tasks/(\d+)$")


class Stats:
    """Request counts, shared by the handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.get_requests = 0
        self.put_requests = 0
        self.task_gids_read = set()
        self.webhooks_created = 0

    def snapshot(self):
        with self.lock:
            return {
                "get_task_requests": self.get_requests,
                "put_task_requests": self.put_requests,
                "webhooks_created": self.webhooks_created,
                "distinct_task_gids_read": len(self.task_gids_read),
                "task_gids_read": sorted(self.task_gids_read),
            }


STATS = Stats()


def task_body(gid, name="BUG-1: already numbered"):
    return {
        "data": {
            "gid": gid,
            "name": name,
            "parent": None,
            "memberships": [],
            "created_at": "2026-01-01T00:00:00.000Z",
        }
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        # One line per request would cost more than the stub's work under load.
        pass

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def path_only(self):
        return self.path.split("?", 1)[0]

    def do_GET(self):
        path = self.path_only()
        if path == "/stats":
            self.send_json(200, STATS.snapshot())
            return
        match = TASK_PATH.match(path)
        if match is None:
            self.send_json(404, {"errors": [{"message": f"not found: {path}"}]})
            return
        gid = match.group(1)
        with STATS.lock:
            STATS.get_requests += 1
            STATS.task_gids_read.add(gid)
        self.send_json(200, task_body(gid))

    def do_PUT(self):
        path = self.path_only()
        body = self.read_body()
        match = TASK_PATH.match(path)
        if match is None:
            self.send_json(404, {"errors": [{"message": f"not found: {path}"}]})
            return
        with STATS.lock:
            STATS.put_requests += 1
        try:
            name = json.loads(body or b"{}").get("data", {}).get("name")
        except (ValueError, AttributeError):
            name = None
        self.send_json(200, task_body(match.group(1), name or "BUG-1: already numbered"))

    def do_POST(self):
        path = self.path_only()
        body = self.read_body()
        if path != "/webhooks":
            self.send_json(404, {"errors": [{"message": f"not found: {path}"}]})
            return
        try:
            data = json.loads(body)["data"]
            resource, target = data["resource"], data["target"]
        except (ValueError, KeyError, TypeError):
            self.send_json(400, {"errors": [{"message": "expected data.resource and data.target"}]})
            return

        secret = secrets.token_hex(16)
        handshake = urllib.request.Request(
            target, data=b"", method="POST", headers={"X-Hook-Secret": secret}
        )
        try:
            with urllib.request.urlopen(handshake, timeout=10) as response:
                echoed = response.headers.get("X-Hook-Secret")
                status = response.status
        except (urllib.error.URLError, OSError) as error:
            message = f"handshake to {target} failed: {error}"
            print(f"asana_stub: {message}", file=sys.stderr)
            self.send_json(400, {"errors": [{"message": message}]})
            return
        if status != 200 or echoed != secret:
            message = f"handshake to {target} returned {status} without the secret echoed"
            print(f"asana_stub: {message}", file=sys.stderr)
            self.send_json(400, {"errors": [{"message": message}]})
            return

        with STATS.lock:
            STATS.webhooks_created += 1
        self.send_json(
            201,
            {
                "data": {
                    "gid": "1",
                    "resource": {"gid": resource},
                    "target": target,
                    "active": True,
                },
                "X-Hook-Secret": secret,
            },
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--port-file", help="file to write the bound port to, once listening")
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="stop after this many seconds (default 900)"
    )
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(f"{port}\n")
    print(f"asana_stub: listening on 127.0.0.1:{port} for at most {args.max_seconds:.0f} s", file=sys.stderr)

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.max_seconds
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    print("asana_stub: stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
