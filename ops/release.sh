#!/usr/bin/env bash
# Builds a Vox release: vox-<version>-<commit>-linux-<arch>.tar.gz and SHA256SUMS.
#
# The tarball holds one folder of the same name:
#   bin/          voxbridge voxcore voxgate voxdialler voxctl (release builds)
#   systemd/      the units, their env examples, the dialler's health check
#   monitoring/   prometheus.yml, alerts.yml, targets/, the rules' unit tests
#   console/      the built web console (when console/dist is built)
#   install.sh    lays a host out from this folder (see its --help)
#   RUNBOOK.md, README.md, VERSION, SHA256SUMS (of every file in the folder)
#
# Every binary must report the same `<version>+<commit>` (`--version`), which names the
# tarball: what /health says after an install is the tarball's name. A build refuses a
# work tree with uncommitted changes (the commit would not describe the binaries) unless
# --allow-dirty, which marks the commit `<sha>-dirty`.
#
# Usage: ops/release.sh [--bin-dir DIR] [--out DIR] [--allow-dirty] [--gzip-level 1-9]
#   --bin-dir     package the binaries in DIR instead of building them (from CI, or a
#                 test); their --version names the release
#   --out         where the tarball and SHA256SUMS go
#                 (default: $CARGO_TARGET_DIR/dist, else target/dist)
#   --gzip-level  compression, 1 (fast) to 9 (small); default 6
set -euo pipefail

die() { echo "release.sh: $*" >&2; exit 1; }

caller=$(pwd)
cd "$(dirname "$0")/.."
repo=$(pwd)
# Folders given on the command line are relative to where the script was run from.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }
bin_dir=""
out=""
allow_dirty=false
level=6
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a folder"; bin_dir=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$2; shift 2 ;;
    --allow-dirty) allow_dirty=true; shift ;;
    --gzip-level) [ $# -ge 2 ] || die "--gzip-level needs 1 to 9"; level=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -z "$bin_dir" ] || bin_dir=$(absolute "$bin_dir")
[ -z "$out" ] || out=$(absolute "$out")
[[ "$level" =~ ^[1-9]$ ]] || die "--gzip-level $level: expected 1 to 9"
target=${CARGO_TARGET_DIR:-$repo/target}
out=${out:-$target/dist}

binaries=(voxbridge voxcore voxgate voxdialler voxctl)

if [ -z "$bin_dir" ]; then
  sha=$(git rev-parse --short=12 HEAD) || die "not a git checkout: build elsewhere and pass --bin-dir"
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    $allow_dirty || die "the work tree has uncommitted changes (git status); commit them, or --allow-dirty"
    sha="$sha-dirty"
  fi
  echo "building release binaries of commit $sha (cargo build --release --locked)"
  VOX_GIT_SHA=$sha cargo build --release --locked -p voxbridge -p voxcore -p voxgate -p voxdialler -p voxctl
  bin_dir=$target/release
  if command -v npm >/dev/null 2>&1; then
    bash console/build.sh
  else
    echo "note: npm is missing, so the web console is not rebuilt; console/dist goes in as it is, if built"
  fi
fi
[ -d "$bin_dir" ] || die "--bin-dir $bin_dir is not a folder"

# The release is what the binaries say they are, and they must all agree.
full=""
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing or not executable"
  said=$("$bin_dir/$b" --version 2>/dev/null) || die "$bin_dir/$b --version failed"
  [ "${said%% *}" = "$b" ] || die "$bin_dir/$b --version says \"$said\": not $b"
  this=${said#* }
  [ -z "$full" ] || [ "$this" = "$full" ] \
    || die "$bin_dir/$b is $this but voxbridge is $full: binaries from different builds; rebuild them together"
  full=$this
done
version=${full%%+*}
commit=${full#*+}
[ "$commit" != "$full" ] && [ -n "$commit" ] && [ "$commit" != unknown ] \
  || die "the binaries report version $full without a commit: build them in a git checkout or with VOX_GIT_SHA"
head=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
if [ -n "$head" ] && [ "${commit%-dirty}" != "$head" ]; then
  echo "note: the binaries are commit $commit, the work tree is at $head; units, monitoring and the runbook come from the work tree"
fi

name=vox-$version-$commit-linux-$(uname -m)
stage_root=$(mktemp -d)
trap 'rm -rf "$stage_root"' EXIT
stage=$stage_root/$name
mkdir -p "$stage/bin" "$stage/systemd" "$stage/monitoring"
for b in "${binaries[@]}"; do
  install -m 0755 "$bin_dir/$b" "$stage/bin/$b"
done
install -m 0644 ops/systemd/*.service ops/systemd/*.timer ops/systemd/*.env.example "$stage/systemd/"
install -m 0755 ops/systemd/voxdialler-healthcheck "$stage/systemd/"
cp -R ops/monitoring/. "$stage/monitoring/"
install -m 0755 ops/install.sh "$stage/install.sh"
install -m 0644 ops/RUNBOOK.md README.md "$stage/"
if [ -f console/dist/index.html ]; then
  cp -R console/dist "$stage/console"
else
  echo "note: console/dist is not built (bash console/build.sh); the release has no web console"
fi
echo "$full" >"$stage/VERSION"
(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum >SHA256SUMS)

# Reproducible archive: sorted names, root-owned, every file dated to the commit.
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
mkdir -p "$out"
tar -C "$stage_root" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -cf - "$name" \
  | gzip -n -"$level" >"$out/$name.tar.gz.new"
mv -f "$out/$name.tar.gz.new" "$out/$name.tar.gz"

# SHA256SUMS beside the tarballs: this release's line replaces an older one of the same name.
sums=$out/SHA256SUMS
{
  [ -f "$sums" ] && grep -v "  $name.tar.gz\$" "$sums" || true
  (cd "$out" && sha256sum "$name.tar.gz")
} | LC_ALL=C sort -k2 >"$sums.new"
mv -f "$sums.new" "$sums"

echo "released Vox $full"
echo "  $out/$name.tar.gz"
echo "  $sums: $(grep "  $name.tar.gz\$" "$sums" | cut -d' ' -f1)"
echo "install on a host: tar xzf $name.tar.gz && sudo $name/install.sh --role <control|fleet|gateway|dialler>"
