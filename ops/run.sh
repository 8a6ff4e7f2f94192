#!/usr/bin/env bash
# Runs the system on this machine with zero setup: for now voxbridge, the control plane,
# on embedded storage in ./vox-data. Extra arguments go to voxbridge (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vox-target}"
cargo build --quiet -p voxbridge
exec "$CARGO_TARGET_DIR/debug/voxbridge" "$@"
