#!/usr/bin/env bash
# Lays a host out as Vox's systemd units expect, from an unpacked release tarball (this
# script sits at its top) or from the repository's ops/ folder with --bin-dir:
#
#   /usr/local/bin/{voxbridge,voxcore,voxgate,voxdialler,voxctl}   the binaries
#   /etc/systemd/system/*.service, *.timer                          the units
#   /usr/local/lib/vox/voxdialler-healthcheck                       the timer's check
#   /etc/vox/<service>.env            settings, from the examples; mode 0600, root's, and
#                                     never overwritten: an existing file is kept as it is
#   /etc/vox/tls/                     certificates (root:vox, 0750)
#   /var/lib/vox, /var/lib/vox/spool  state and the recordings spool (vox:vox, 0750)
#   /usr/local/share/vox/             the web console, monitoring config, RUNBOOK.md
#
# then creates the `vox` system user and enables the units of this host's roles. Run it
# again to upgrade or roll back: binaries and units are replaced, settings are kept.
#
# Usage: install.sh [--role control|fleet|gateway|dialler|all]... [--workers N]
#                   [--bin-dir DIR] [--root DIR] [--restart]
#   --role      what this host runs (repeatable; default all, the one-machine layout):
#               control = voxbridge; fleet = voxcore-host + voxcore@1..N;
#               gateway = voxgate; dialler = voxdialler + its health-check timer
#   --workers   call slots on a fleet host (default: VOX_WORKERS of an existing
#               /etc/vox/voxcore.env, else 4); written into a new voxcore.env
#   --bin-dir   take the binaries from DIR (default: bin/ next to this script)
#   --root      install under DIR instead of / (an image, or a test's scratch tree): no
#               user is created, nothing is chowned, and units are enabled offline
#               (systemctl --root); nothing is started
#   --restart   restart the roles' services after installing (an upgrade or a rollback)
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=""
bin_dir=""
workers=""
restart=false
roles=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a folder"; root=$2; shift 2 ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a folder"; bin_dir=$2; shift 2 ;;
    --workers) [ $# -ge 2 ] || die "--workers needs a number"; workers=$2; shift 2 ;;
    --role) [ $# -ge 2 ] || die "--role needs one of control, fleet, gateway, dialler, all"; roles+=("$2"); shift 2 ;;
    --restart) restart=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[ ${#roles[@]} -gt 0 ] || roles=(all)
want_control=false want_fleet=false want_gateway=false want_dialler=false
for r in "${roles[@]}"; do
  case "$r" in
    control) want_control=true ;;
    fleet) want_fleet=true ;;
    gateway) want_gateway=true ;;
    dialler) want_dialler=true ;;
    all) want_control=true want_fleet=true want_gateway=true want_dialler=true ;;
    *) die "--role $r: expected control, fleet, gateway, dialler or all" ;;
  esac
done
if [ -n "$workers" ] && ! [[ "$workers" =~ ^[1-9][0-9]{0,3}$ ]]; then
  die "--workers $workers: expected a number of call slots from 1 to 9999"
fi
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  [ "$root" != "/" ] || root=""
fi
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "installing into / needs root (sudo), or --root DIR for a scratch tree"
fi
$restart && [ -n "$root" ] && die "--restart cannot restart services inside --root $root"

# What to install: the unpacked release (bin/, systemd/, monitoring/, console/ beside this
# script), or the repository (ops/ with --bin-dir; the console from console/dist).
units_src=$here/systemd
[ -d "$units_src" ] || die "no systemd/ folder next to $0: run it from an unpacked release or the repository's ops/"
bin_dir=${bin_dir:-$here/bin}
[ -d "$bin_dir" ] || die "no binaries at $bin_dir: pass --bin-dir (e.g. target/release) or run the install.sh of an unpacked release"
console_src=""
for c in "$here/console" "$here/../console/dist"; do
  if [ -f "$c/index.html" ]; then console_src=$c; break; fi
done

# Call slots on a fleet host: the flag, else what voxcore.env already says, else 4.
core_env=$root/etc/vox/voxcore.env
configured=""
[ -f "$core_env" ] && configured=$(sed -n 's/^[[:space:]]*VOX_WORKERS=[[:space:]]*\([0-9]*\).*/\1/p' "$core_env" | tail -n 1)
if [ -n "$workers" ] && [ -n "$configured" ] && [ "$workers" != "$configured" ]; then
  die "--workers $workers, but $core_env says VOX_WORKERS=$configured: edit the file (it is never overwritten) so they agree"
fi
workers=${workers:-${configured:-4}}

if [ -f "$here/SHA256SUMS" ]; then
  (cd "$here" && sha256sum --check --quiet --strict SHA256SUMS) \
    || die "the release's files do not match its SHA256SUMS: unpack the tarball again"
fi

binaries=(voxbridge voxcore voxgate voxdialler voxctl)
version=""
for b in "${binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing or not executable"
  said=$("$bin_dir/$b" --version 2>/dev/null) || die "$bin_dir/$b --version failed: is it built for this machine?"
  [ "${said%% *}" = "$b" ] || die "$bin_dir/$b --version says \"$said\": not $b"
  this=${said#* }
  [ -z "$version" ] || [ "$this" = "$version" ] || die "$bin_dir/$b is $this but voxbridge is $version: binaries from different builds"
  version=$this
done
echo "installing Vox $version into ${root:-/}"

# Binaries: written beside the old ones and renamed over them, so a running process keeps
# its file and the next start gets the new one.
install -d -m 0755 "$root/usr/local/bin" "$root/usr/local/lib/vox" "$root/usr/local/share/vox"
for b in "${binaries[@]}"; do
  install -m 0755 "$bin_dir/$b" "$root/usr/local/bin/.$b.new"
  mv -f "$root/usr/local/bin/.$b.new" "$root/usr/local/bin/$b"
done
install -m 0755 "$units_src/voxdialler-healthcheck" "$root/usr/local/lib/vox/voxdialler-healthcheck"

install -d -m 0755 "$root/etc/systemd/system"
for u in "$units_src"/*.service "$units_src"/*.timer; do
  install -m 0644 "$u" "$root/etc/systemd/system/$(basename "$u")"
done

share=$root/usr/local/share/vox
if [ -n "$console_src" ]; then
  rm -rf "$share/console.new"
  cp -R "$console_src" "$share/console.new"
  rm -rf "$share/console"
  mv "$share/console.new" "$share/console"
else
  echo "note: no built web console here (console/dist); voxgate's / will say how to build it"
fi
if [ -d "$here/monitoring" ]; then
  rm -rf "$share/monitoring"
  cp -R "$here/monitoring" "$share/monitoring"
fi
[ -f "$here/RUNBOOK.md" ] && install -m 0644 "$here/RUNBOOK.md" "$share/RUNBOOK.md"
echo "$version" >"$share/VERSION"

# The service user, its state and the settings.
if [ -z "$root" ]; then
  if ! getent passwd vox >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/vox --no-create-home --shell /usr/sbin/nologin vox
    echo "created the system user vox"
  fi
else
  echo "note: --root: no user created; on the target run" \
    "useradd --system --user-group --home-dir /var/lib/vox --shell /usr/sbin/nologin vox"
fi
install -d -m 0755 "$root/etc/vox"
install -d -m 0750 "$root/etc/vox/tls" "$root/var/lib/vox" "$root/var/lib/vox/spool"
if [ -z "$root" ]; then
  chown vox:vox /var/lib/vox /var/lib/vox/spool
  chgrp vox /etc/vox/tls
fi

env_files=()
$want_control && env_files+=(voxbridge)
$want_fleet && env_files+=(voxcore)
$want_gateway && env_files+=(voxgate)
$want_dialler && env_files+=(voxdialler)
for e in "${env_files[@]}"; do
  dest=$root/etc/vox/$e.env
  if [ -e "$dest" ]; then
    echo "kept /etc/vox/$e.env (never overwritten)"
    continue
  fi
  (umask 077 && sed "s/^VOX_WORKERS=.*/VOX_WORKERS=$workers/" "$units_src/$e.env.example" >"$dest.new")
  chmod 0600 "$dest.new"
  mv "$dest.new" "$dest"
  echo "wrote /etc/vox/$e.env from the example (mode 0600): edit it before starting"
done

# Enable the roles' units.
units=()
$want_control && units+=(voxbridge.service)
if $want_fleet; then
  units+=(voxcore-host.service)
  for i in $(seq 1 "$workers"); do units+=("voxcore@$i.service"); done
fi
$want_gateway && units+=(voxgate.service)
$want_dialler && units+=(voxdialler.service voxdialler-healthcheck.timer)

# Worker instances beyond VOX_WORKERS would be slots the host never heartbeats.
extra=()
for link in "$root"/etc/systemd/system/multi-user.target.wants/voxcore@*.service; do
  [ -e "$link" ] || [ -L "$link" ] || continue
  i=${link##*/voxcore@}
  i=${i%.service}
  if $want_fleet && [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -gt "$workers" ]; then extra+=("voxcore@$i.service"); fi
done

systemctl_args=()
[ -n "$root" ] && systemctl_args=(--root="$root")
if command -v systemctl >/dev/null 2>&1; then
  [ -z "$root" ] && { systemctl daemon-reload || echo "note: systemd is not running here; units are enabled for the next boot"; }
  if [ ${#extra[@]} -gt 0 ]; then
    systemctl "${systemctl_args[@]}" disable --quiet "${extra[@]}"
    echo "disabled ${extra[*]} (above VOX_WORKERS=$workers)"
  fi
  systemctl "${systemctl_args[@]}" enable --quiet "${units[@]}"
  echo "enabled ${units[*]}"
else
  echo "note: no systemctl here; enable the units with: systemctl enable ${units[*]}"
fi

if $restart; then
  # Not waiting: a worker drains its live call before it restarts (up to an hour).
  # voxcore@ instances restart with voxcore-host (PartOf); start brings up new ones.
  services=()
  for u in "${units[@]}"; do
    case "$u" in voxcore@*) ;; *) services+=("$u") ;; esac
  done
  systemctl restart --no-block "${services[@]}"
  systemctl start --no-block "${units[@]}"
  echo "restarting ${services[*]} (workers as their calls end); watch: systemctl status 'vox*'"
fi

[ -z "$(command -v curl)" ] && $want_dialler && echo "note: install curl; voxdialler-healthcheck uses it"
if [ -n "$root" ]; then
  echo "check the units: systemd-analyze verify --root=$root ${units[*]}"
else
  echo "next: edit /etc/vox/*.env, then systemctl start ${units[*]}"
  echo "      (or restart them after an upgrade); confirm with: curl -s 127.0.0.1:7070/health; voxctl health"
fi
