#!/usr/bin/env bash
# Chapter 6's ensemble 6l on one GPU: its five members trained as one vmapped program (what
# ensemble=auto means on an accelerator), 40 epochs on the 250,000 expanded images each, then
# the plurality vote; each member's own test accuracy at its best-validation epoch is 6k's
# row for seeds 0-4.
#
#   NNJAX_DATA_DIR=DIR scripts/ch6_gpu.sh [OUT [more experiments.ch6 options]]
#
# OUT (default results/gpu) receives ch6.json, ch6.md and wall_s.txt, the wall time of the
# whole command. On a CPU, `scripts/ch6_gpu.sh OUT --quick` is the seconds-long smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu}"
shift $(( $# > 0 ? 1 : 0 ))
python="${PYTHON:-.venv/bin/python}"
"$python" -c 'import jax; print("devices:", jax.devices())'
start=$(date +%s)
"$python" -m experiments.ch6 --only 6l --seeds 1 --out "$out" --no-plots "$@"
echo $(( $(date +%s) - start )) > "$out/wall_s.txt"
echo "wall time $(cat "$out/wall_s.txt") s; results in $out/ch6.md"
