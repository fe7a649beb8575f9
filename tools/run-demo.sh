#!/usr/bin/env bash
# `make run`: the worker in the background on the local broker, the bundled demo forwarded,
# its findings printed. `make stop` calls this with `stop`. Safe to run again: a running worker
# is reused, and findings are read from the beginning of the topic.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOCAL=.local
PID_FILE=$LOCAL/worker.pid
LOG=$LOCAL/worker.log
EXFIL=.venv/bin/exfilguard
DEMO=tests/fixtures/invictus/CloudTrail
export EXFILGUARD_DATA_DIR="${EXFILGUARD_DATA_DIR:-$LOCAL/worker}"
export EXFILGUARD_WEB_PORT="${EXFILGUARD_WEB_PORT:-6066}"
export EXFILGUARD_FINDING_UPDATE_INTERVAL_SECONDS=0

running() { [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

if [[ "${1:-}" == stop ]]; then
  if running; then
    pid=$(cat "$PID_FILE")
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "worker: stopped (pid $pid)"
  fi
  rm -f "$PID_FILE"
  exit 0
fi

mkdir -p "$LOCAL"
if running; then
  echo "worker: already running (pid $(cat "$PID_FILE"), log $LOG)"
else
  setsid nohup "$EXFIL" worker --config tools/demo-config.yaml >"$LOG" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  echo "worker: started (pid $!, log $LOG)"
fi
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$EXFILGUARD_WEB_PORT/readyz" >/dev/null 2>&1 && break
  running || { echo "worker: exited; the end of $LOG:"; tail -n 20 "$LOG"; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$EXFILGUARD_WEB_PORT/readyz" >/dev/null \
  || { echo "worker: not ready after 120 s; see $LOG"; exit 1; }

echo "demo: forwarding $DEMO (Stratus Red Team's EC2 credential theft, Invictus IR capture)"
"$EXFIL" forward --no-progress "$DEMO"
echo "demo: findings (exfilguard findings --from-beginning --latest-only):"
for _ in $(seq 10); do
  out=$("$EXFIL" findings --from-beginning --latest-only --timeout 4 --summary)
  if grep -q "OutsideAWS" <<<"$out"; then
    echo "$out"
    echo "demo: worker and broker keep running; \`make stop\` stops both"
    exit 0
  fi
done
echo "demo: no OutsideAWS finding arrived; see $LOG" >&2
exit 1
