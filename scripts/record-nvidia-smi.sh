#!/bin/sh
# Records real nvidia-smi output as fixtures for the nvidia device plugin's tests. Run it on a
# machine with an NVIDIA GPU and driver, from anywhere in the repository:
#
#   scripts/record-nvidia-smi.sh [NAME]
#
# It runs exactly the two queries devices/nvidia runs (test/devices/nvidia.test.ts checks that
# they stay the same) and writes, in test/fixtures/nvidia-smi/:
#   NAME.fingerprint.csv   the inventory query's stdout, under a "# RECORDED" header
#   NAME.stats.csv         the stats query's stdout, likewise
#   NAME.exit-code         only when nvidia-smi exited non-zero
#   NAME.stderr.txt        only when nvidia-smi wrote to stderr
# NAME defaults to recorded-<count>x<model>, e.g. recorded-1xH200. The fake nvidia-smi in that
# folder serves a set to tests as FAKE_NVIDIA_SMI_FIXTURE=NAME, and the plugin's tests read every
# set found there. Set NVIDIA_SMI to use another nvidia-smi than the one on PATH.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/test/fixtures/nvidia-smi
smi=${NVIDIA_SMI:-nvidia-smi}
format=--format=csv,noheader,nounits
inventory_query=--query-gpu=index,uuid,name,memory.total,pci.bus_id,driver_version
stats_query=--query-gpu=uuid,utilization.gpu,memory.used,temperature.gpu,power.draw

if ! command -v "$smi" >/dev/null 2>&1; then
  echo "record-nvidia-smi: $smi not found: run this on a machine with an NVIDIA GPU and its driver" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs one query into $tmp/<what>.out and .err, and its exit code into .code.
record() {
  what=$1
  query=$2
  code=0
  "$smi" "$query" "$format" >"$tmp/$what.out" 2>"$tmp/$what.err" || code=$?
  echo "$code" >"$tmp/$what.code"
}
record fingerprint "$inventory_query"
record stats "$stats_query"

if [ "$#" -ge 1 ]; then
  name=$1
else
  count=$(grep -c ', ' "$tmp/fingerprint.out" || true)
  model=$(sed -n '1p' "$tmp/fingerprint.out" | awk -F', ' '{ print $3 }' | sed 's/^NVIDIA //; s/[^A-Za-z0-9_.-][^A-Za-z0-9_.-]*/-/g; s/-*$//')
  name=recorded-${count}x${model:-unknown}
fi

version=$("$smi" --version 2>/dev/null | grep -i 'version' | tr '\n' ';' | sed 's/;$//' || true)
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for what in fingerprint stats; do
  case $what in
    fingerprint) query=$inventory_query ;;
    stats) query=$stats_query ;;
  esac
  {
    echo "# RECORDED on $when from a real GPU (not synthetic), by scripts/record-nvidia-smi.sh."
    echo "# Query: $smi $query $format"
    echo "# nvidia-smi: ${version:-version unknown}; exit code $(cat "$tmp/$what.code")"
    cat "$tmp/$what.out"
  } >"$out/$name.$what.csv"
  echo "wrote $out/$name.$what.csv"
done

# One exit code per set: the fake applies it to both queries. The inventory query's is the one
# that decides what the plugin reports.
rm -f "$out/$name.exit-code" "$out/$name.stderr.txt"
code=$(cat "$tmp/fingerprint.code")
if [ "$code" != 0 ]; then
  echo "$code" >"$out/$name.exit-code"
  echo "wrote $out/$name.exit-code ($code)"
fi
if [ -s "$tmp/fingerprint.err" ] || [ -s "$tmp/stats.err" ]; then
  cat "$tmp/fingerprint.err" "$tmp/stats.err" >"$out/$name.stderr.txt"
  echo "wrote $out/$name.stderr.txt"
fi
