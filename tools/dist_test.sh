#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS...]
# On a machine without CUDA the processes use gloo on the CPU (GPUS = number of processes).
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR, PYTHON (see dist_launch.sh).
[ $# -ge 3 ] || { echo "usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS...]" >&2; exit 2; }
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
