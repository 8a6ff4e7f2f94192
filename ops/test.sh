#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the storage conformance suites and the
# tests that start real processes (voxbridge, grpcurl), with MongoDB (secantusdb), Redis and
# S3 (s3s-fs) servers on free ports. Installs missing test tools first.
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ops/install-test-deps.sh
# Builds are slow on small machines: keep one target dir across runs and checkouts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vox-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Real servers for the production backends, on free ports, stopped when this script ends.
# A test that needs one and cannot find it fails; it never skips.
servers=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$servers"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on port $1; its log:" >&2; cat "$servers/$2.log" >&2; return 1
}

mongo_port=$(free_port)
mkdir -p "$servers/mongo"
secantusd-py --port "$mongo_port" --storage-path "$servers/mongo" >"$servers/mongo.log" 2>&1 &
pids+=($!)
wait_port "$mongo_port" mongo
export VOX_TEST_MONGO_URL="mongodb://127.0.0.1:$mongo_port/?directConnection=true"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$servers/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port" redis
export VOX_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

# S3: s3s-fs on a temporary folder. Tests create their own buckets; those that must stop
# S3 mid-test start a server of their own from the same binary (VOX_TEST_S3FS_BIN).
s3_bin=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
s3_port=$(free_port)
mkdir -p "$servers/s3"
export VOX_TEST_S3_ACCESS_KEY="vox-test-access"
export VOX_TEST_S3_SECRET_KEY="vox-test-secret-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
"$s3_bin" --host 127.0.0.1 --port "$s3_port" --access-key "$VOX_TEST_S3_ACCESS_KEY" \
  --secret-key "$VOX_TEST_S3_SECRET_KEY" "$servers/s3" >"$servers/s3.log" 2>&1 &
pids+=($!)
wait_port "$s3_port" s3
export VOX_TEST_S3_URL="http://127.0.0.1:$s3_port"
export VOX_TEST_S3FS_BIN="$s3_bin"

# The browser tests (tests/, vox-e2e) drive the built console in headless Chromium.
bash console/build.sh

cargo nextest run --workspace --no-fail-fast "$@"
