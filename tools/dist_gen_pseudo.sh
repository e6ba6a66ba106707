#!/usr/bin/env bash
# Distributed pseudo-label export: tools/dist_gen_pseudo.sh CONFIG CHECKPOINT GPUS --out DIR [ARGS...]
# Every process labels the images with index % world_size == rank; rank 0 writes the manifest.
# On a machine without CUDA the processes use gloo on the CPU (GPUS = number of processes).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/gen_pseudo.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
