#!/usr/bin/env bash
# Builds the web console into console/dist, which voxgate serves at / (--console-dir).
# Installs the exact dependencies of package-lock.json (npm ci) when node_modules is
# missing or older than the lockfile, then type-checks and bundles with Vite.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "console/build.sh: Node.js 20+ and npm are needed to build the console (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "console/build.sh: Node.js $(node --version) is too old; the console needs Node.js 20 or newer" >&2
  exit 1
fi

stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "console: installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "console: building into console/dist" >&2
npm run --silent build -- --logLevel warn
test -f dist/index.html || { echo "console/build.sh: the build wrote no dist/index.html" >&2; exit 1; }
