#!/usr/bin/env bash
# Runs a command against a local AWS emulator (moto_server) on 127.0.0.1.
#
# usage: scripts/emulator.sh CMD [ARGS...]
#
# Uses moto[server] (pinned) from the tools virtualenv (scripts/tools.sh installs it
# on first use), starts it on a free port, waits until it answers, switches its Batch
# backend to "no docker" (jobs are accepted and described, never run), exports the
# standard AWS variables (AWS_ENDPOINT_URL, AWS_REGION, test credentials), runs CMD,
# and stops the server by PID whatever happens. Exits with CMD's status.
#
# env: TANDEM_CACHE  where the tools virtualenv lives (default: ~/.cache/tandem)
set -euo pipefail

MOTO_VERSION=5.2.1
# shellcheck source=tools.sh
source "$(dirname "$0")/tools.sh"
py="$(tandem_venv)/python"

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
"$py" -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$log"
}
trap stop EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 150); do
    if "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/data.json', timeout=1)" "$endpoint" 2>/dev/null; then
        ready=1
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "emulator: moto_server exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.2
done
if [ -z "${ready:-}" ]; then
    echo "emulator: moto_server did not answer on $endpoint within 30 s" >&2
    cat "$log" >&2
    exit 1
fi
"$py" - "$endpoint" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/moto-api/config", method="POST",
                             data=json.dumps({"batch": {"use_docker": False}}).encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5)
PY
echo "emulator: moto_server $MOTO_VERSION on $endpoint (pid $pid)" >&2

export AWS_ENDPOINT_URL="$endpoint"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
export TANDEM_EMULATOR=moto

set +e
"$@"
status=$?
set -e
exit "$status"
