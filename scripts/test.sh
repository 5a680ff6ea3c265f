#!/usr/bin/env bash
# The project's test command (README "Set up", and what CI runs).
# Finds the data through $TRAINER_DATA_DIR (default: ../shared/data beside the repo); where MNIST is missing it
# downloads it from the public mirror with checksums verified, then runs every test of the workspace.
# tests/tests/moto.rs needs moto's server: $TRAINER_MOTO_SERVER, else target/moto-venv/bin/moto_server (.ci/run
# installs it there; by hand: python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]==5.2.6').
set -euo pipefail
cd "$(dirname "$0")/.."
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
mnist="$TRAINER_DATA_DIR/mnist"
if ! ls "$mnist"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "MNIST not found in $mnist: downloading it (checksums verified)"
  if [ ! -w "$(dirname "$TRAINER_DATA_DIR")" ] && [ ! -w "$TRAINER_DATA_DIR" ]; then
    export TRAINER_DATA_DIR="$PWD/target/data"
    mnist="$TRAINER_DATA_DIR/mnist"
  fi
  cargo run --release -q -p trainer -- data download mnist --dir "$mnist"
fi
echo "data: $TRAINER_DATA_DIR"
cargo test --workspace --no-fail-fast "$@"
