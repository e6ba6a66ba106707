#!/usr/bin/env bash
# Distributed pseudo-label export: tools/dist_gen_pseudo.sh CONFIG CHECKPOINT GPUS --out DIR [ARGS...]
# Every process labels the images with index % world_size == rank; rank 0 writes the manifest.
# On a machine without CUDA the processes use gloo on the CPU (GPUS = number of processes).
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR, PYTHON (see dist_launch.sh).
[ $# -ge 3 ] || { echo "usage: tools/dist_gen_pseudo.sh CONFIG CHECKPOINT GPUS --out DIR [ARGS...]" >&2; exit 2; }
exec bash "$(dirname "$0")/dist_launch.sh" gen_pseudo.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
