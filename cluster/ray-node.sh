#!/usr/bin/env bash
# Start or stop Ray on one cluster node without `ray stop` (which kills every Ray process of the
# user on the machine, other people's clusters included). The cluster YAMLs call it as their
# head/worker start commands:
#
#   ray-node.sh head   [ray start args ...]   ray start --head --block ... in the background
#   ray-node.sh worker [ray start args ...]   ray start --block ... (args include --address)
#   ray-node.sh stop                          stop the Ray this script started, by its PID
#   ray-node.sh status                        exit 0 when that Ray is running
#
# `start` stops the previous Ray this script started (a `ray up` re-run restarts cleanly), then
# waits until the node is up, printing the `ray start` log. Token auth is always on (ray-env.sh):
# the node refuses to start without its token file. State: $CROCODILE_STATE_DIR (default
# ~/.crocodile): ray-node.pid, ray-node.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set +u  # a venv's activate script may read unset variables
# shellcheck source=ray-env.sh
. "$here/ray-env.sh"
set -u
state="${CROCODILE_STATE_DIR:-$HOME/.crocodile}"
pidfile="$state/ray-node.pid"
log="$state/ray-node.log"
mkdir -p "$state"

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
    running || { rm -f "$pidfile"; return 0; }
    local pid
    pid="$(cat "$pidfile")"
    # `ray start --block` stops all of its node's processes on SIGTERM.
    kill -TERM "$pid"
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "ray-node: $pid ignored SIGTERM for 60 s; killing its process group" >&2
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "ray-node: stopped Ray (pid $pid)"
}

start() {
    local role="$1"
    shift
    if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
        echo "ray-node: no Ray token at $RAY_AUTH_TOKEN_PATH; on your machine run cluster/secrets.sh," \
             "then ray up again" >&2
        exit 1
    fi
    local head=()
    [ "$role" = head ] && head=(--head)
    stop
    : >"$log"
    # A new session: the node outlives the SSH session that started it; $$ is ray's own PID.
    setsid bash -c 'echo $$ >"$0"; exec ray start "$@" --block --disable-usage-stats' \
        "$pidfile" "${head[@]}" "$@" </dev/null >>"$log" 2>&1 &
    for _ in $(seq 240); do
        # Printed after the node is up and its address file written.
        if grep -q "block forever" "$log"; then
            cat "$log"
            echo "ray-node: $role up (pid $(cat "$pidfile"))"
            return 0
        fi
        if [ -s "$pidfile" ] && ! running; then
            cat "$log" >&2
            echo "ray-node: ray start exited" >&2
            exit 1
        fi
        sleep 0.5
    done
    cat "$log" >&2
    echo "ray-node: $role not up after 120 s" >&2
    stop
    exit 1
}

case "${1:-}" in
    head | worker) start "$@" ;;
    stop) stop ;;
    status) running ;;
    *)
        echo "usage: $0 head|worker [ray start args ...] | stop | status" >&2
        exit 2
        ;;
esac
