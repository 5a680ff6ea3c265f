#!/usr/bin/env bash
# Runs one committed sweep (mlp8, lenet5 or gpt) from scratch with the release build, then its report; keeps the
# results, the report and its plots here under <name>/ (the run folders, with their events and weights, stay in a
# temporary folder). Prints the wall time.
#   bash experiments/sweeps/run.sh mlp8
set -euo pipefail
name="${1:?usage: run.sh mlp8|lenet5|gpt}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer
out="$(mktemp -d)/sweep"
start=$(date +%s)
./target/release/trainer sweep "$here/${name}_sweep.toml" --out "$out" --quiet
end=$(date +%s)
rm -rf "$here/$name"
./target/release/trainer report "$out" --out "$here/$name"
cp "$out/results.csv" "$out/results.json" "$out/profile.json" "$here/$name/"
{
  echo "command: bash experiments/sweeps/run.sh $name  (trainer sweep experiments/sweeps/${name}_sweep.toml, then trainer report)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "sweep wall time: $((end - start)) s"
} > "$here/$name/run.txt"
cat "$here/$name/run.txt"
