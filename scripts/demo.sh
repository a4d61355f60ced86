#!/usr/bin/env bash
# The README's main command: set up (toolchains, venv), then run the embedded self-training default on CPU
# (procedural tasks, a GPT-2 built locally, SFT -> RM -> 2 x [PPO -> hard negatives -> RM]) and print its report.
# Nothing is downloaded at run time. Rerunning resumes / does nothing once finished.
# Usage: bash scripts/demo.sh [RUN_DIR]        (default RUN_DIR: runs/selftrain-default)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN_DIR="${1:-runs/selftrain-default}"
.venv/bin/rewardranker selftrain --config default --run-dir "$RUN_DIR"
echo "report: $RUN_DIR/report/report.md  plot: $RUN_DIR/report/report.png"
