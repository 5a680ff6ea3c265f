#!/usr/bin/env bash
# Trains the three example configs and records what they produced (command, summary, metrics, resolved config)
# under experiments/<name>/. Weights stay in runs/ (not committed).
#   bash experiments/run_examples.sh [mnist_mlp mnist_lenet5 shakespeare_gpt]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p trainer
names=("${@:-mnist_mlp mnist_lenet5 shakespeare_gpt}")
for name in ${names[@]}; do
  out="runs/experiment-$name-$(date +%s)"
  dest="experiments/$name"
  mkdir -p "$dest"
  cmd="target/release/trainer fit examples/$name.toml --out $out"
  echo "== $cmd"
  /usr/bin/time -v $cmd 2> "$dest/stderr.log" > /dev/null
  cp "$out/summary.json" "$out/metrics.jsonl" "$out/config.resolved.toml" "$dest/"
  {
    echo "command: $cmd"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    grep -E "Maximum resident|Elapsed \(wall" "$dest/stderr.log" | sed 's/^\s*//'
  } > "$dest/run.txt"
  grep -vE "^step |^\s" "$dest/stderr.log" | grep -v "^\s*$" > /dev/null || true
  cat "$dest/summary.json"
done
