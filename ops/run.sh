#!/usr/bin/env bash
# Runs the whole system on this machine with zero setup (`voxctl up --demo`): voxbridge
# (the control plane), a fleet host of voxcore workers, voxgate (the edge, which serves
# the web console built by console/build.sh), voxdialler and voxsim (a simulated
# carrier) dialling a demo campaign, on embedded storage in ./vox-data. It prints
# the URLs and where the generated credentials are, and stops everything cleanly on
# Ctrl-C. Extra arguments go to `voxctl up` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vox-target}"
# The web console voxgate serves at / (needs Node.js 20+ and npm).
bash console/build.sh || { echo "ops/run.sh: the web console did not build (see above); the REST API still works" >&2; }
echo "building voxbridge, voxcore, voxgate, voxdialler, voxsim and voxctl (minutes the first time)..." >&2
cargo build --quiet -p voxbridge -p voxcore -p voxgate -p voxdialler -p voxsim -p voxctl
# --demo adds the outbound side: voxsim (a simulated carrier), voxdialler and a running
# demo campaign, so calls flow at once. `voxctl up` without it runs the cluster alone.
exec "$CARGO_TARGET_DIR/debug/voxctl" up --demo "$@"
