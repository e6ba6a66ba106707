#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG GPUS [ARGS...]
# On a machine without CUDA the processes use gloo on the CPU (GPUS = number of processes).
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR, PYTHON (see dist_launch.sh).
[ $# -ge 2 ] || { echo "usage: tools/dist_train.sh CONFIG GPUS [ARGS...]" >&2; exit 2; }
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" --launcher pytorch "${@:3}"
