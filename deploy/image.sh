#!/bin/bash
# Build the container images of the production stack with podman (`make image`):
#
#   localhost/lookalike:latest           the service (lookalike serve / worker / any command)
#   localhost/lookalike-s3:latest        the stack's S3-compatible test server (moto)
#   localhost/lookalike-postgres:latest  PostgreSQL 15 (Debian)
#   localhost/lookalike-redis:latest     Redis 7 (Debian)
#
# No container registry is needed: the base image is a Debian bookworm root file system made
# with mmdebstrap, and Python packages come from a wheelhouse made here with the project's
# virtualenv (pinned to the versions installed there), so the builds reach no package index.
# Run from the repository root, as root; installs podman and friends when missing.
#
#   deploy/image.sh                 everything above
#   deploy/image.sh --context-only  only the build context (deploy/build/context: wheelhouses
#                                   and files), for another builder such as Docker (docs/deploy.md)
#
# Settings (environment): PYTHON_BIN (the virtualenv's bin, default .venv/bin),
# DEBIAN_MIRROR (a Debian mirror's URL for the base; default: mmdebstrap's own, with bookworm's
# updates and security suites added), TAG (default latest),
# REBUILD_BASE=1 to make the base image again (for Debian's latest security updates).
set -euo pipefail

cd "$(dirname "$0")/.."
DEPLOY=deploy
BUILD=$DEPLOY/build               # git-ignored: base file system, wheelhouses, build context
CONTEXT=$BUILD/context
PYTHON_BIN=${PYTHON_BIN:-.venv/bin}
TAG=${TAG:-latest}
BASE_IMAGE=localhost/lookalike-base:bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/$DEPLOY/containers.conf}

log() { printf '== %s\n' "$*"; }

context_only=0
case "${1:-}" in
    "") ;;
    --context-only) context_only=1 ;;
    *) echo "usage: $0 [--context-only]" >&2; exit 2 ;;
esac

# --- tools -------------------------------------------------------------------------------
# runc: crun fails on cgroup v1 hosts (containers.conf selects runc); netavark and aardvark-dns:
# the compose stack's services find each other by name.
# python3-venv: the wheelhouse is resolved by Debian's python3, the image's interpreter.
needed=(python3-venv)
if ((!context_only)); then
    needed+=(podman runc mmdebstrap podman-compose netavark aardvark-dns curl)
fi
missing=()
for pkg in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi
[[ -x $PYTHON_BIN/pip ]] || { echo "no $PYTHON_BIN/pip: run make venv first" >&2; exit 1; }

# --- base image ------------------------------------------------------------------------------
# minbase plus Debian's python3 (3.11 on bookworm, as the project requires) and CA certificates
# (TLS to AWS S3). Merged /usr without the usrmerge package, which would pull in perl;
# documentation and translations left out. Made once (REBUILD_BASE=1: again).
base_image() {
    if [[ ${REBUILD_BASE:-0} != 1 ]] && podman image exists "$BASE_IMAGE"; then
        return
    fi
    mkdir -p "$BUILD/base"
    log "making the Debian bookworm base with mmdebstrap (log: $BUILD/mmdebstrap.log)"
    mmdebstrap --variant=minbase \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include=python3,python3-venv,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$BUILD/base/bookworm.tar" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} \
        > "$BUILD/mmdebstrap.log" 2>&1 \
        || { tail -n 30 "$BUILD/mmdebstrap.log" >&2; exit 1; }
    podman import --quiet --change 'CMD ["/bin/bash"]' "$BUILD/base/bookworm.tar" \
        "$BASE_IMAGE" > /dev/null
    rm -f "$BUILD/base/bookworm.tar"
}

# --- wheelhouses -----------------------------------------------------------------------------
# The versions the project's virtualenv runs (and its tests pass with), not whatever is newest.
mkdir -p "$CONTEXT/wheels" "$CONTEXT/s3-wheels"
"$PYTHON_BIN/pip" freeze --exclude-editable | grep -v ' @ ' > "$BUILD/constraints.txt"
# Resolved by Debian's python3, the image's own interpreter: dependencies behind markers such
# as python_full_version < "3.11.3" must be chosen for the image's Python, not the virtualenv's.
if [[ ! -x $BUILD/wheel-venv/bin/pip ]]; then
    /usr/bin/python3 -m venv "$BUILD/wheel-venv"
fi
PIP=$BUILD/wheel-venv/bin/pip
# This checkout's code: a fresh wheel of it every time (its version number does not change).
rm -f "$CONTEXT"/wheels/lookalike-*.whl
log "wheelhouse: lookalike[index,s3]"
"$PIP" wheel --quiet --wheel-dir "$CONTEXT/wheels" --find-links "$CONTEXT/wheels" \
    --constraint "$BUILD/constraints.txt" ".[index,s3]"
log "wheelhouse: the S3 test server"
"$PIP" wheel --quiet --wheel-dir "$CONTEXT/s3-wheels" \
    --find-links "$CONTEXT/s3-wheels" --constraint "$BUILD/constraints.txt" \
    "moto[s3]" flask flask-cors
cp "$DEPLOY/precompile.py" "$DEPLOY/s3-server.py" "$DEPLOY/postgres-entrypoint.sh" "$CONTEXT/"
if ((context_only)); then
    log "build context ready in $CONTEXT"
    exit 0
fi
base_image

# --- images ----------------------------------------------------------------------------------
# --network host: the builds themselves reach nothing but Debian's mirror (apt, for PostgreSQL
# and Redis), which the host reaches directly.
build() {
    local file=$1 target=$2 name=$3
    log "building $name:$TAG"
    podman build --quiet --network host --build-arg "BASE=$BASE_IMAGE" \
        -f "$DEPLOY/$file" --target "$target" -t "$name:$TAG" "$CONTEXT" > /dev/null
}
build Containerfile runtime localhost/lookalike
build Containerfile.services s3 localhost/lookalike-s3
build Containerfile.services postgres localhost/lookalike-postgres
build Containerfile.services redis localhost/lookalike-redis

# Intermediate stages and replaced tags: kept, they fill the disk build after build.
podman image prune --force > /dev/null
podman images --filter reference='localhost/lookalike*' \
    --format 'table {{.Repository}}:{{.Tag}} {{.Size}}'
