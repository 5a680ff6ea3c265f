#!/usr/bin/env bash
# The project's test command (README "Set up", and what CI runs).
# Finds the data through $TRAINER_DATA_DIR (default: ../shared/data beside the repo); where MNIST is missing it
# downloads it from the public mirror with checksums verified, then runs every test of the workspace.
# tests/tests/moto.rs needs moto's server (PyPI moto[server]): $TRAINER_MOTO_SERVER, else target/moto-venv, which
# this script makes where it is missing (python3 with venv; .ci/run installs python3-venv).
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
if [ -z "${TRAINER_MOTO_SERVER:-}" ] && [ ! -x target/moto-venv/bin/moto_server ]; then
  echo "moto's server not found: installing moto[server] into target/moto-venv"
  # Without it only tests/tests/moto.rs fails (saying how to install it); every other test still runs.
  { python3 -m venv target/moto-venv && target/moto-venv/bin/pip install -q 'moto[server]==5.2.6'; } ||
    echo "could not install moto[server] (python3-venv and PyPI needed): the moto tests will fail"
fi
cargo test --workspace --no-fail-fast "$@"
