#!/usr/bin/env bash
# Runs the whole system on this machine with zero setup (`voxctl up`): voxbridge (the
# control plane), a fleet host of voxcore workers and voxgate (the edge), on embedded
# storage in ./vox-data. It prints the URLs and where the generated credentials are, and
# stops everything cleanly on Ctrl-C. Extra arguments go to `voxctl up` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vox-target}"
echo "building voxbridge, voxcore, voxgate and voxctl (minutes the first time)..." >&2
cargo build --quiet -p voxbridge -p voxcore -p voxgate -p voxctl
exec "$CARGO_TARGET_DIR/debug/voxctl" up "$@"
