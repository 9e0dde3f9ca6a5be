#!/usr/bin/env bash
# One GPU session's measurements for the README's Speed section, in order, each under its own time limit:
# the bare-step probe, the timing benchmark (DistilBERT's architecture, random weights, full SST-2), and the
# accuracy check (real MiniLM-L6 weights, full SST-2). Writes logs and JSON tables to $OUT (default bench_out/).
#
# Expects SST-2 and the models copied into .gpu/ (git-ignored): .gpu/sst2, .gpu/distilbert-base-uncased-arch,
# .gpu/minilm-l6-h384-uncased; and, where `datasets` is not installed, its wheels in .whl/.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench_out}
mkdir -p "$OUT"
if ! python3 -c "import datasets" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, datasets, pyarrow; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)" | tee -a "$OUT/gpu.txt"
# Cold: no arm runs a compiler, so no compile or autotune cache is read; these are cleared all the same.
rm -rf ~/.cache/torch/inductor "/tmp/torchinductor_$(whoami)" ~/.triton/cache
timeout "${PROBE_S:-150}" python3 bench/step_profile.py --model_name .gpu/distilbert-base-uncased-arch \
  --data_dir .gpu/sst2 2>&1 | tee "$OUT/step_profile.txt"
timeout "${TIMING_S:-300}" python3 bench/bench.py --model_name .gpu/distilbert-base-uncased-arch \
  --data_dir .gpu/sst2 --out "$OUT/bench_timing.json" 2>&1 | tee "$OUT/bench_timing.txt"
timeout "${ACCURACY_S:-260}" python3 bench/bench.py --model_name .gpu/minilm-l6-h384-uncased \
  --data_dir .gpu/sst2 --out "$OUT/bench_accuracy.json" 2>&1 | tee "$OUT/bench_accuracy.txt"
