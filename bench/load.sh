#!/usr/bin/env bash
# Load test of the webhook acknowledgement path of `autonumber serve`, on loopback only.
#
# Starts the Asana stub (bench/asana_stub.py) and `autonumber serve` on free 127.0.0.1 ports
# with a fresh data directory. Registers prefix BUG through the real handshake, with
# `autonumber webhooks create` against the stub. Then runs wrk twice against POST /webhooks/BUG:
#   1. heartbeat: the signed body {"events":[]}, which is verified and parsed but enqueues
#      nothing (HTTP, the secret lookup, HMAC and JSON, without the queue commit);
#   2. events: distinct signed bodies of one task-added event each, so every acknowledged
#      request commits one queue row.
# Afterwards it stops serve and checks that every event acknowledged with 200 is still in the
# queue, was read by the worker (the stub counts the task gids it served) or is in the
# dead-letter table. It exits non-zero when an acknowledged event is missing, and stops
# everything it started by pid.
#
# Usage: bench/load.sh            (build first: cargo build --release -p autonumber-cli)
# Environment (defaults in brackets):
#   AUTONUMBER_BIN   binary under test [target/release/autonumber]
#   DURATION         wrk duration of each run [20s]
#   THREADS          wrk threads [2]
#   CONNECTIONS      wrk connections [16]
#   BODIES           distinct event bodies [200000], about 7 times what 20 s took in
#                    BENCHMARKS.md; the check reports it when bodies had to repeat
#   REQUESTS_PER_MINUTE  worker's Asana budget [serve's default, 1500]
#   KEEP_DATA=1      keep the data directory and body files (about 70 MB at the default BODIES)

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${AUTONUMBER_BIN:-$ROOT/target/release/autonumber}
DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
BODIES=${BODIES:-200000}
PROJECT_GID=1208300000000001
# Upper bound on the lifetime of the stub and of serve, in seconds, should this script die.
MAX_SECONDS=900

if [[ ! -x $BIN ]]; then
    echo "load.sh: $BIN not found: run cargo build --release -p autonumber-cli" >&2
    exit 2
fi
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        echo "load.sh: wrk is missing: install it (Debian: apt-get install wrk)" >&2
        exit 2
    fi
fi

WORK=$(mktemp -d /tmp/autonumber-load.XXXXXX)
DATA=$WORK/data
STUB_PID=
SERVE_PID=

stop_pid() {
    local pid=$1
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "load.sh: pid $pid did not stop within 10 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    stop_pid "$SERVE_PID"
    stop_pid "$STUB_PID"
    if [[ ${KEEP_DATA:-0} != 1 ]]; then
        rm -rf "$DATA" "$WORK"/bodies-*
    fi
    echo "load.sh: logs and wrk outputs are in $WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU seconds (user + system) that a process has used so far.
cpu_seconds() {
    awk -v ticks="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / ticks }' "/proc/$1/stat"
}

machine() {
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- Asana stub -----------------------------------------------------------------------------
python3 "$ROOT/bench/asana_stub.py" --port-file "$WORK/stub.port" --max-seconds "$MAX_SECONDS" \
    2>"$WORK/stub.log" &
STUB_PID=$!
for _ in $(seq 100); do
    [[ -s $WORK/stub.port ]] && break
    sleep 0.1
done
[[ -s $WORK/stub.port ]] || { echo "load.sh: the Asana stub did not start; see $WORK/stub.log" >&2; exit 1; }
STUB_URL=http://127.0.0.1:$(cat "$WORK/stub.port")

# The per-second counts below read serve's text log, at the default level.
export AUTONUMBER_LOG_FORMAT=text RUST_LOG=info
export ASANA_PERSONAL_KEY=bench-token
export ASANA_API_URL=$STUB_URL
if [[ -n ${REQUESTS_PER_MINUTE:-} ]]; then
    export AUTONUMBER_ASANA_REQUESTS_PER_MINUTE=$REQUESTS_PER_MINUTE
fi

# --- autonumber serve -----------------------------------------------------------------------
PORT=$(free_port)
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
# Bounds serve's lifetime even if this script is killed before its trap runs. It sleeps in
# steps of 1 s, so killing it leaves no long sleep behind.
(
    for _ in $(seq "$MAX_SECONDS"); do sleep 1; done
    kill -TERM "$SERVE_PID" 2>/dev/null
) >/dev/null 2>&1 &
WATCHDOG_PID=$!
trap 'kill "$WATCHDOG_PID" 2>/dev/null || true; cleanup' EXIT

for _ in $(seq 100); do
    grep -q "listening for webhooks" "$WORK/serve.log" && break
    sleep 0.1
done
grep -q "listening for webhooks" "$WORK/serve.log" || { echo "load.sh: serve did not start; see $WORK/serve.log" >&2; exit 1; }
URL=http://127.0.0.1:$PORT

# --- registration through the real handshake ------------------------------------------------
"$BIN" webhooks create --project "$PROJECT_GID" --prefix BUG --target-url "$URL" --data-dir "$DATA" \
    >"$WORK/webhooks-create.out" 2>"$WORK/webhooks-create.log" \
    || { echo "load.sh: webhooks create failed; see $WORK/webhooks-create.log" >&2; exit 1; }
echo "webhook registered: gid $(cat "$WORK/webhooks-create.out")"

run_wrk() {
    local name=$1 expect_repeats=$2
    echo
    echo "=== $name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $URL/webhooks/BUG"
    machine
    local cpu_before
    cpu_before=$(cpu_seconds "$SERVE_PID")
    BODIES="$WORK/bodies-$name" EXPECT_REPEATS=$expect_repeats wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
        -s "$ROOT/bench/replay.lua" "$URL/webhooks/BUG" | tee "$WORK/wrk-$name.txt"
    echo "serve CPU time during the run: $(awk -v a="$cpu_before" -v b="$(cpu_seconds "$SERVE_PID")" 'BEGIN { printf "%.2f", b - a }') s"
}

# --- 1. heartbeat ---------------------------------------------------------------------------
python3 "$ROOT/bench/make_bodies.py" --database "$DATA/autonumber.sqlite3" --threads "$THREADS" \
    --heartbeat --out "$WORK/bodies-heartbeat"
run_wrk heartbeat 1

# --- 2. one task-added event per request ----------------------------------------------------
python3 "$ROOT/bench/make_bodies.py" --database "$DATA/autonumber.sqlite3" --threads "$THREADS" \
    --count "$BODIES" --out "$WORK/bodies-events"
run_wrk events 0
echo "acknowledged deliveries per second (serve's log; first and last seconds are partial):"
grep "delivery accepted" "$WORK/serve.log" | grep "enqueued=1 " | cut -c12-19 | uniq -c \
    | awk '{ printf "%s ", $1 } END { print "" }'

# --- check: every acknowledged event is queued, processed or dead-lettered ------------------
echo
echo "=== check"
stop_pid "$SERVE_PID"
SERVE_PID=
ACKED=$(awk '/^status 200:/ { print $3 }' "$WORK/wrk-events.txt")
ACKED=${ACKED:-0}
python3 - "$DATA/autonumber.sqlite3" "$STUB_URL/stats" "$ACKED" "$WORK/wrk-events.txt" <<'EOF'
import json
import sqlite3
import sys
import urllib.request

database, stats_url, acked, wrk_output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
queued = {row[0] for row in connection.execute("SELECT group_id FROM queue")}
queue_rows = connection.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
dead = {row[0] for row in connection.execute("SELECT group_id FROM dead_letters")}
connection.close()
with urllib.request.urlopen(stats_url, timeout=10) as response:
    stats = json.load(response)
read = set(stats["task_gids_read"])
stored = queued | read | dead
repeated = "bodies repeated" in open(wrk_output).read()

print(f"acknowledged with 200: {acked} requests of one event each")
print(f"queue rows left: {queue_rows} ({len(queued)} distinct tasks)")
print(f"read by the worker (GET /tasks at the stub): {len(read)} distinct tasks, "
      f"{stats['get_task_requests']} requests, {stats['put_task_requests']} renames")
print(f"dead letters: {len(dead)}")
print(f"distinct tasks queued, processed or dead-lettered: {len(stored)}")
if repeated:
    print("inconclusive: bodies were repeated, so duplicates were acknowledged without a new row; raise BODIES")
    sys.exit(0)
if len(stored) < acked:
    print(f"FAILED: {acked - len(stored)} acknowledged events are neither queued nor processed")
    sys.exit(1)
print(f"ok: every acknowledged event is stored; {len(stored) - acked} more were stored than "
      "acknowledged (requests in flight when wrk stopped, whose answers wrk did not count)")
EOF
