#!/usr/bin/env bash
# Runs one emulated sweep (mlp8, lenet5 or gpt; NAME_sweep.toml here) from scratch with the release build: every
# point trained on a Lambda emulator of its own at the sweep file's dilation (root: cgroups, namespaces, tc), then
# its report; keeps the results, the report and its plots under NAME/ here (run folders stay in a temporary folder,
# or SWEEP_OUT to keep and resume them). Prints the wall time.
#   sudo bash experiments/sweeps_emulated/run.sh mlp8
set -euo pipefail
name="${1:?usage: run.sh mlp8|mlp8_first|fleet16|lenet5|gpt|gpt_first|gpt_3008}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer -p slice-worker
out="${SWEEP_OUT:-$(mktemp -d)/sweep}"
start=$(date +%s)
./target/release/trainer sweep "$here/${name}_sweep.toml" --out "$out" 2> >(grep -v '^step ' >&2) || status=$?
end=$(date +%s)
rm -rf "$here/$name"
./target/release/trainer report "$out" --out "$here/$name"
cp "$out/results.csv" "$out/results.json" "$out/profile.json" "$here/$name/"
{
  echo "command: sudo bash experiments/sweeps_emulated/run.sh $name  (trainer sweep experiments/sweeps_emulated/${name}_sweep.toml, then trainer report)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "dilation: $(sed -n 's/^dilation = //p' "$here/${name}_sweep.toml")"
  echo "sweep wall time: $((end - start)) s"
} > "$here/$name/run.txt"
cat "$here/$name/run.txt"
exit "${status:-0}"
