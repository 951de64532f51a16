#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and root integration tests on the real
# kernel, then a suite-level leak check (mounts, loop devices, cgroups, processes).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: the integration tests run containers: run as root" >&2; exit 1; }
scripts/install-deps.sh
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo build --workspace --all-targets -q
# The host's LXCFS (docs/inside.md) is started by the first container start; stop it after
# the suite unless it ran before or a container outside the suite still uses it.
lxcfs_pid_file=/run/berth/lxcfs.pid
lxcfs_before=""
if [ -e "$lxcfs_pid_file" ] && kill -0 "$(cat "$lxcfs_pid_file")" 2>/dev/null; then lxcfs_before=1; fi
cargo test --workspace --no-fail-fast -- --test-threads=4 2>&1 | tee /tmp/berth-test.log
if [ -z "$lxcfs_before" ] && [ -e "$lxcfs_pid_file" ]; then
  users=0
  for f in /run/berth/lxcfs.attached/*; do [ -e "$f" ] && [ -e "/proc/$(basename "$f")" ] && users=$((users + 1)); done
  if [ "$users" = 0 ]; then
    lxcfs_pid=$(cat "$lxcfs_pid_file")
    kill "$lxcfs_pid" 2>/dev/null || true
    # it takes a moment to exit (its destructor); its cgroups empty only then
    for _ in $(seq 100); do kill -0 "$lxcfs_pid" 2>/dev/null || break; sleep 0.1; done
    umount -l /run/berth/lxcfs 2>/dev/null || true
    rm -f "$lxcfs_pid_file"
    # and its own (now empty) cgroups
    for d in /sys/fs/cgroup/*/berth-lxcfs /sys/fs/cgroup/berth-lxcfs; do
      [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
  fi
fi
leaks=0
# No LXCFS of a test's own (views.rs) left running, and no stale LXCFS mount (its daemon dead).
if for p in /proc/[0-9]*; do { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null; echo; done | grep -E '^[^ ]*lxcfs .*/tmp/berth-test-'; then
  echo "LEAK: lxcfs of a test node root"; leaks=1
fi
while read -r mp; do
  [ -n "$mp" ] || continue
  if ! timeout 5 cat "$mp/proc/uptime" >/dev/null 2>&1; then echo "LEAK: stale lxcfs mount $mp"; leaks=1; fi
done < <(awk '{for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "fuse.lxcfs") print $5; break }}' /proc/self/mountinfo)
if grep -E '/tmp/berth-test-' /proc/self/mountinfo; then echo "LEAK: mounts"; leaks=1; fi
if losetup -a | grep -E '/tmp/berth-test-'; then echo "LEAK: loop devices"; leaks=1; fi
for f in /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device; do
  [ -e "$f" ] || continue
  if grep -E '^7:' "$f"; then echo "LEAK: root blkio rule for a loop device in $f"; leaks=1; fi
done
# The host-wide ID registry (ADR 0009): destroyed containers free their entries, rolled-back
# creates too. (Entries of another suite running at the same time would show here, as its
# node roots show below.)
if [ -e /var/lib/berth-idmap/ranges ] && grep -E '^[0-9]+ [0-9]+ [0-9a-zA-Z]+ [0-9]+ /tmp/berth-test-' /var/lib/berth-idmap/ranges; then
  echo "LEAK: ID registry entries of test node roots"; leaks=1
fi
for f in /tmp/berth-test-*/node.toml; do
  [ -e "$f" ] || continue
  echo "LEAK: node root $(dirname "$f")"; leaks=1
done
if [ $leaks = 0 ]; then echo "leak check: nothing left behind"; else exit 1; fi
