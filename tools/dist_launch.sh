#!/usr/bin/env bash
# Shared torchrun launcher of dist_train.sh, dist_test.sh and dist_gen_pseudo.sh:
#   tools/dist_launch.sh TOOL NPROC [ARGS...]   (runs NPROC processes of tools/TOOL ARGS)
# Environment defaults as mmseg's: NNODES=1, NODE_RANK=0, PORT=29500, MASTER_ADDR=127.0.0.1;
# PYTHON selects the interpreter. Without CUDA the processes use gloo on the CPU.
TOOL=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/$TOOL" \
    "${@:3}"
