#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the storage conformance suites and the
# tests that start real processes (voxbridge, grpcurl). Installs missing test tools first.
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ops/install-test-deps.sh
# Builds are slow on small machines: keep one target dir across runs and checkouts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vox-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo nextest run --workspace --no-fail-fast "$@"
