#!/usr/bin/env bash
# Installs what Berth needs on a fresh Debian node (as root): Debian packages, then a Rust
# toolchain check. Idempotent and quiet when everything is there.
set -euo pipefail
# libc6-dev: glibc's libc.a, for the static supervisor (crates/berth-init, ADR 0007)
# lxcfs: the containers' /proc resource views (docs/inside.md); Berth runs its own instance
# restic: the test oracle of backups (Debian 0.14 reads what berth-backup writes; ADR 0016)
need=(busybox-static e2fsprogs xfsprogs debootstrap libseccomp-dev pkg-config xz-utils zstd tar util-linux nftables iproute2 libc6-dev lxcfs restic)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "error: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
