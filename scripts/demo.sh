#!/usr/bin/env bash
# The main job on the embedded default: build Berth, prepare a node, build the busybox OS
# template from the host, create and start a container, run a command in it, list containers.
# Uses BERTH_ROOT (default /var/lib/berth). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: run as root (containers need namespaces, mounts and cgroups)" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release -q -p berth
B=target/release/berth
export BERTH_ROOT=${BERTH_ROOT:-/var/lib/berth}
$B node init
$B template info busybox >/dev/null 2>&1 || $B template create busybox
if $B status demo >/dev/null 2>&1; then $B destroy demo --force; fi
$B create --ostemplate busybox --name demo --hostname demo.berth.local --config light
$B start demo
echo "--- berth exec demo -- cat /etc/os-release"
$B exec demo -- cat /etc/os-release
echo "--- berth exec demo -- sh -c 'hostname; id; ps'"
$B exec demo -- sh -c 'hostname; id; ps'
echo "--- berth exec demo -- sh -c 'free -m; df -h /'   (its own memory and disk, not the host's)"
$B exec demo -- sh -c 'free -m; df -h /'
echo "--- berth exec demo -- ip -4 addr show eth0   (its address on the node's default network)"
$B exec demo -- ip -4 addr show eth0
echo "--- berth network list"
$B network list
echo "--- berth list"
$B list
echo
echo "Try: $B enter demo    |    $B console demo    |    $B stop demo    |    $B destroy demo"
