#!/bin/bash
# Smoke test of the production stack (`make smoke`, after `make image`): start deploy/compose.yaml
# (web service with 2 processes, worker, PostgreSQL, Redis, S3 server), import a small labelled
# set of real faces and train inside the app container, predict a held-out photo over HTTP
# (kept with consent, so it lands in S3), sign in as an admin and read the dashboard's figures,
# queue a retrain that the worker runs through Redis; then stop and remove everything,
# volumes included. Run from the repository root, as root.
#
# Settings (environment): SMOKE_PORT (host port of the web service, default 18080),
# SMOKE_PEOPLE (people imported, default 12), PYTHON_BIN (default .venv/bin; its `demo` extra
# provides the ORL faces), KEEP=1 to leave the stack running for a look.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=deploy/build
PROJECT=lookalike-smoke
PORT=${SMOKE_PORT:-18080}
PEOPLE=${SMOKE_PEOPLE:-12}
PYTHON_BIN=${PYTHON_BIN:-.venv/bin}
BASE_URL=http://127.0.0.1:$PORT
WORK=$BUILD/smoke
LOG=$WORK/compose.log
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}

started=$(date +%s)
log() { printf '== [%3ds] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; exit 1; }
# The compose file runs from a copy in the work folder, so that a deploy/.env made for a real
# stack (which podman-compose reads next to the file, over the environment) plays no part.
compose() { podman-compose -f "$WORK/compose.yaml" -p "$PROJECT" "$@"; }
# A command in the running app container. podman itself, not `podman-compose exec`, which
# mixes its own messages into the command's output.
app() { podman exec -i "${PROJECT}_app_1" "$@"; }
# A field of a JSON document on stdin, by a Python expression over `d`.
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# Only this test's settings: none of the caller's variables that the compose file reads.
while read -r name; do
    unset "$name"
done < <(compgen -e | grep -E '^(LOOKALIKE_|S3_|POSTGRES_|TAG$)' || true)
# Fresh secrets for this run only (hex: safe inside the database URL).
LOOKALIKE_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
export LOOKALIKE_SECRET_KEY POSTGRES_PASSWORD
export LOOKALIKE_PUBLISH=127.0.0.1:$PORT LOOKALIKE_WORKERS=2 S3_BUCKET=lookalike-smoke

cleanup() {
    local status=$?
    if ((status != 0)); then
        echo "--- last lines of the containers' logs" >&2
        for service in app worker postgres redis s3; do
            echo "--- $service" >&2
            podman logs --tail 15 "${PROJECT}_${service}_1" 2>&1 | sed 's/^/    /' >&2 || true
        done
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        log "KEEP=1: the stack stays up on $BASE_URL (podman-compose -p $PROJECT ... down -v)"
    else
        log "stopping and removing the stack (containers, network, volumes)"
        compose down -v >> "$LOG" 2>&1 || true
        # podman-compose 1.0 leaves the project's network behind.
        podman network rm --force "${PROJECT}_default" >> "$LOG" 2>&1 || true
        log "removed"
    fi
    exit "$status"
}

for image in lookalike lookalike-s3 lookalike-postgres lookalike-redis; do
    podman image exists "localhost/$image:latest" || fail "no $image image: run make image"
done
mkdir -p "$WORK"
: > "$LOG"
cp deploy/compose.yaml "$WORK/compose.yaml"
# A run interrupted before its clean-up leaves containers that would clash with these names.
compose down -v >> "$LOG" 2>&1 || true
trap cleanup EXIT

# --- data: real faces, labelled -------------------------------------------------------------
# The ORL faces (the `demo` extra, on the host: the image has no demo data) as one folder per
# person; each person's last 3 photos are held out as visitors, never imported.
log "building the sample data ($PEOPLE people from the ORL faces)"
rm -rf "$WORK/data"
"$PYTHON_BIN/python" - "$WORK/data" "$PEOPLE" <<'EOF'
import shutil
import sys
from pathlib import Path

from lookalike.demo_data import build_demo_dataset

dest, people = Path(sys.argv[1]), int(sys.argv[2])
gallery, visitors = build_demo_dataset(dest, holdout=3)
for part in (gallery, visitors):
    for folder in sorted(part.iterdir())[people:]:
        shutil.rmtree(folder)
EOF
photo="$WORK/data/visitors/Person 01/10.png"
[[ -f $photo ]] || fail "no visitor photo $photo"

# --- the stack -------------------------------------------------------------------------------
log "starting the stack ($PROJECT)"
compose up -d >> "$LOG" 2>&1 || fail "compose up (see $LOG)"

# The app waits for nothing at start: a database still starting is retried by the restart
# policy, so wait for an answer that says the database is reachable.
log "waiting for $BASE_URL/api/health"
for _ in $(seq 1 90); do
    health=$(curl -fsS "$BASE_URL/api/health" 2>/dev/null) && break
    sleep 2
done
[[ -n ${health:-} ]] || fail "the web service did not answer within 180 s"
[[ $(json 'd["database"]' <<< "$health") == ok ]] || fail "database not reachable: $health"
log "health: $health"

# --- import and train inside the app container ------------------------------------------------
log "importing $(find "$WORK/data/gallery" -type f | wc -l) photos inside the app container"
tar -C "$WORK/data" -c gallery | app tar -x -C /data/ 2>> "$LOG" \
    || fail "copying the photos into the container"
app lookalike import /data/gallery 2>> "$LOG" | tail -3
log "training inside the app container"
app lookalike train 2>> "$LOG" | tail -5

# Every serving process follows the registry's champion between requests.
for _ in $(seq 1 30); do
    model=$(curl -fsS "$BASE_URL/api/health" | json 'd["model"] or ""')
    [[ -n $model ]] && break
    sleep 1
done
[[ -n ${model:-} ]] || fail "the web service never loaded the trained model"
log "serving model $model"

# --- a prediction over HTTP, the photo kept in S3 -----------------------------------------------
log "predicting a held-out photo (consent given: the photo is kept in S3)"
answer=$(curl -fsS -F "photo=@$photo;type=image/png" -F consent=true \
    "$BASE_URL/api/predictions") || fail "POST /api/predictions"
kind=$(json 'd["answer"]["kind"]' <<< "$answer")
[[ $kind == same_person || $kind == lookalike ]] || fail "unexpected answer: $answer"
log "answer: $(json 'd["answer"]["message"]' <<< "$answer")"
kept=$(app python -c '
import os, s3fs
fs = s3fs.S3FileSystem(
    key=os.environ["LOOKALIKE_S3_ACCESS_KEY_ID"],
    secret=os.environ["LOOKALIKE_S3_SECRET_ACCESS_KEY"],
    client_kwargs={"endpoint_url": os.environ["LOOKALIKE_S3_ENDPOINT_URL"],
                   "region_name": os.environ["LOOKALIKE_S3_REGION"]},
)
root = os.environ["LOOKALIKE_STORAGE_URL"].removeprefix("s3://")
print(len(fs.find(root + "/consented")))
' 2>> "$LOG") || fail "listing the S3 bucket"
((kept >= 1)) || fail "the kept photo is not in S3"
log "objects kept in s3://$S3_BUCKET/objects/consented: $kept"

# --- the admin dashboard ---------------------------------------------------------------------
log "creating an admin and signing in"
printf '%s\n' "$ADMIN_PASSWORD" \
    | app lookalike admin create-user smoke --password-stdin >> "$LOG" 2>&1 \
    || fail "lookalike admin create-user"
jar=$WORK/cookies.txt
rm -f "$jar"
form=$(curl -fsS -c "$jar" -b "$jar" "$BASE_URL/admin/login")
csrf=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' <<< "$form")
[[ -n $csrf ]] || fail "no sign-in form token"
status=$(curl -sS -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
    --data-urlencode name=smoke --data-urlencode "password=$ADMIN_PASSWORD" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode next=/admin "$BASE_URL/admin/login")
[[ $status == 303 ]] || fail "sign-in answered $status"
me=$(curl -fsS -b "$jar" "$BASE_URL/api/admin/me") || fail "GET /api/admin/me"
log "signed in: $me"
classes=$(curl -fsS -b "$jar" "$BASE_URL/api/analytics/classes") \
    || fail "GET /api/analytics/classes"
total=$(json 'd["total"]' <<< "$classes")
((total >= 1)) || fail "the dashboard counts no prediction: $classes"
curl -fsS -o /dev/null -b "$jar" "$BASE_URL/admin" || fail "GET /admin"
log "dashboard: /api/analytics/classes counts $total prediction(s); /admin answers"

# --- a retrain queued over the API, run by the worker ------------------------------------------
log "queueing a retrain (the worker takes it from Redis)"
token=$(app lookalike admin create-token smoke 2>> "$LOG" | tail -1)
job=$(curl -fsS -X POST -H "Authorization: Bearer $token" "$BASE_URL/api/models/retrain" \
    | json 'd["id"]') || fail "POST /api/models/retrain"
for _ in $(seq 1 60); do
    outcome=$(curl -fsS -H "Authorization: Bearer $token" "$BASE_URL/api/models/jobs/$job")
    [[ $(json 'd["done"]' <<< "$outcome") == True ]] && break
    sleep 2
done
[[ $(json 'd["done"]' <<< "$outcome") == True ]] \
    || fail "the worker did not finish retrain job $job within 120 s"
log "retrain job $job done by the worker: $(json 'json.dumps(d["result"])[:300]' <<< "$outcome")"

log "SMOKE PASSED in $(($(date +%s) - started)) s"
