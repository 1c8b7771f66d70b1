#!/usr/bin/env bash
# Start, stop or describe a private Docker Engine for the stack tests.
#
# usage: scripts/docker-engine.sh start|stop|status|env|exec CMD...
#
# The engine is this project's alone: its own containerd, data root, exec
# root, socket and pidfile under $LABDOCK_DOCKER_DIR (default .work/docker),
# all inside a network namespace of its own. The namespace keeps the
# engine's bridges and iptables rules away from the host and from any other
# engine on the machine, and gives containers no route to the outside.
# Published ports therefore listen on the namespace's loopback: reach them
# with `scripts/docker-engine.sh exec curl ...`.
#
# `start` installs Debian's docker.io when dockerd is missing (as root).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${LABDOCK_DOCKER_DIR:-$repo/.work/docker}"
# Unix socket paths are limited to 108 bytes, so the namespace name and the
# socket stay short and derive from the directory.
suffix="$(printf '%s' "$dir" | sha1sum | cut -c1-8)"
netns="labdock-$suffix"
socket="$dir/docker.sock"

log() { printf 'docker-engine: %s\n' "$*" >&2; }

install_engine() {
    if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "dockerd is missing; install Debian's docker.io as root"
        exit 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
}

pid_alive() {
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {
    local what="$1" seconds="$2"
    shift 2
    for _ in $(seq $((seconds * 10))); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$what did not come up within ${seconds}s; see $dir/*.log"
    return 1
}

start() {
    install_engine
    if pid_alive "$dir/docker.pid"; then
        log "already running (pid $(cat "$dir/docker.pid"))"
        return
    fi
    mkdir -p "$dir/data" "$dir/exec" "$dir/containerd/root" "$dir/containerd/state"
    if [[ ! -e "/run/netns/$netns" ]]; then
        ip netns add "$netns"
    fi
    ip netns exec "$netns" ip link set lo up

    # containerd of our own, so that the engine never shares the system's
    # /run/containerd/containerd.sock with another engine.
    nsenter --net="/run/netns/$netns" \
        containerd --address "$dir/containerd.sock" \
        --root "$dir/containerd/root" --state "$dir/containerd/state" \
        >"$dir/containerd.log" 2>&1 &
    echo $! >"$dir/containerd.pid"
    wait_for containerd 20 test -S "$dir/containerd.sock"

    # The address pool is outside Docker's default 172.17-31/16 pools so that
    # the namespace's routes never look like another engine's.
    nsenter --net="/run/netns/$netns" \
        dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
        --containerd "$dir/containerd.sock" \
        -H "unix://$socket" --pidfile "$dir/docker.pid" \
        --default-address-pool base=10.213.0.0/16,size=24 \
        --log-level warn >"$dir/dockerd.log" 2>&1 &
    wait_for dockerd 60 docker -H "unix://$socket" info
    log "running: DOCKER_HOST=unix://$socket (network namespace $netns)"
}

stop_pid() {
    local pidfile="$1" name="$2"
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        return
    fi
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
        kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop() {
    if pid_alive "$dir/docker.pid"; then
        # Stop containers first so that their shims exit with the engine.
        ids="$(docker -H "unix://$socket" ps -q || true)"
        if [[ -n "$ids" ]]; then
            # shellcheck disable=SC2086
            docker -H "unix://$socket" stop -t 5 $ids >/dev/null || true
        fi
    fi
    stop_pid "$dir/docker.pid" dockerd
    stop_pid "$dir/containerd.pid" containerd
    if [[ -e "/run/netns/$netns" ]]; then
        ip netns del "$netns"
    fi
    log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if pid_alive "$dir/docker.pid"; then
        echo "running pid=$(cat "$dir/docker.pid") DOCKER_HOST=unix://$socket netns=$netns"
    else
        echo "stopped"
        exit 1
    fi
    ;;
env)
    echo "export DOCKER_HOST=unix://$socket"
    echo "export LABDOCK_DOCKER_NETNS=$netns"
    ;;
exec)
    shift
    exec nsenter --net="/run/netns/$netns" "$@"
    ;;
*)
    echo "usage: $0 start|stop|status|env|exec CMD..." >&2
    exit 2
    ;;
esac
