#!/usr/bin/env bash
# The paper's math experiment at small scale, end to end (issue 13):
#   GSM8K train problems → C* (Calculator, the paper's k 20, m 10; τ_f 0 with result_check stated_next,
#   configs/experiment_math_annotate.yaml) → fine-tuning on C* (lr 1e-5,
#   10% warm-up, the checkpoint with the lowest held-out perplexity) → ASDiv with the base and the
#   fine-tuned model, each with calls disabled and enabled: accuracy, call share, and accuracy with and
#   without a call (the paper's Table 9).
# Writes scripts/results/experiment_math.json (figures, settings, seconds per stage, git commit) and
# scripts/results/experiment_math.png. Started again, it skips finished stages and resumes the others.
#
#   bash scripts/experiment_math.sh
#
# Environment (defaults: this 2-core CPU within 90 minutes):
#   MODEL        the model annotated with, fine-tuned and evaluated: smollm2-135m, or a HF checkpoint
#                directory such as checkpoints/gpt-j-6b
#   MESH         data,fsdp,tensor over the devices, for every stage (-1: the rest). GPT-J-6B on a TPU
#                VM: MESH=1,-1,1 (fully sharded). Nothing else changes.
#   OUT          the run directory (runs/experiment_math); another OUT starts afresh
#   GSM8K ASDIV  the data (../shared/data/gsm8k/train.jsonl, ../shared/data/asdiv/ASDiv.xml)
#   PROBLEMS     GSM8K problems annotated (96); HELD_OUT the next ones, for held-out perplexity (32)
#   STEPS        fine-tuning steps (100; 8 sequences of 256 tokens each)
#   ASDIV_LIMIT  ASDiv problems evaluated (300): the file's first ones, grades 1–3
#   PYTHON       the interpreter (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

exec "${PYTHON:-.venv/bin/python}" scripts/experiment_math.py \
  --model "${MODEL:-smollm2-135m}" \
  --mesh="${MESH:--1,1,1}" \
  --out "${OUT:-runs/experiment_math}" \
  --gsm8k "${GSM8K:-../shared/data/gsm8k/train.jsonl}" \
  --asdiv "${ASDIV:-../shared/data/asdiv/ASDiv.xml}" \
  --problems "${PROBLEMS:-96}" \
  --held-out "${HELD_OUT:-32}" \
  --asdiv-limit "${ASDIV_LIMIT:-300}" \
  --train-override "steps=${STEPS:-100}" \
  "$@"
