#!/usr/bin/env bash
# One GPU session's measurements, in order, each under its own time limit; the default stages' limits sum
# to 8 minutes (timing 200 s, accuracy 120 s, probe 60 s, sentences 2 x 50 s), so they fit one lent
# session (15 minutes with start-up, 10 a command). STAGES picks them, each runnable alone
# (default: timing accuracy probe sentences; fp16, about 210 s, only when named):
#   timing    the headline ratio: notebook settings against the defaults, DistilBERT's architecture (random
#             weights), full SST-2
#   probe     the bare-step probe (eager against graphed steps)
#   accuracy  the same with the real MiniLM-L6 weights
#   fp16      the timing arms plus an fp16 column (CUDA graphs are off with fp16 today: its loss scaler reads the
#             scale on the host), so the fp16 figure a Volta/Turing user gets is measured beside the others
#   sentences the defaults with MiniLM-L6 on full SST-2, scored also on an external labelled test set of whole
#             sentences (data/external/sst2_test_labelled.parquet), once per split mode (random, grouped)
#   curve     (only when named, about 4 minutes) a learning curve at 1%, 3%, 10%, 30% and all of SST-2 against one
#             full-size run, MiniLM-L6: the ratio (bench/curve_cost.py)
# Writes logs and JSON to $OUT (default bench_out/).
#
# Expects SST-2 and the models in the README's folders (git-ignored): data/sst2, models/distilbert-base-uncased-arch,
# models/minilm-l6-h384-uncased, data/external/; and, where `datasets` is not installed, its wheels in .whl/.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench_out}
STAGES=${STAGES:-timing accuracy probe sentences}
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
for stage in $STAGES; do
  case $stage in
    probe) timeout "${PROBE_S:-60}" python3 bench/step_profile.py --model_name models/distilbert-base-uncased-arch \
             --data_dir data/sst2 2>&1 | tee "$OUT/step_profile.txt" ;;
    timing) timeout "${TIMING_S:-200}" python3 bench/bench.py --model_name models/distilbert-base-uncased-arch \
              --data_dir data/sst2 --out "$OUT/bench_timing.json" 2>&1 | tee "$OUT/bench_timing.txt" ;;
    accuracy) timeout "${ACCURACY_S:-120}" python3 bench/bench.py --model_name models/minilm-l6-h384-uncased \
                --data_dir data/sst2 --out "$OUT/bench_accuracy.json" 2>&1 | tee "$OUT/bench_accuracy.txt" ;;
    fp16) timeout "${FP16_S:-240}" python3 bench/bench.py --model_name models/distilbert-base-uncased-arch \
            --data_dir data/sst2 --variant fp16:precision=fp16 --out "$OUT/bench_fp16.json" 2>&1 \
            | tee "$OUT/bench_fp16.txt" ;;
    sentences)
      for split in random grouped; do
        rm -rf "/tmp/sentences_$split"
        timeout "${SENTENCES_S:-50}" python3 sst2_compare.py --model_name models/minilm-l6-h384-uncased \
          --data_dir data/sst2 --external_test_file data/external/sst2_test_labelled.parquet --split "$split" \
          --save_models false --output_dir "/tmp/sentences_$split" ${SENTENCES_ARGS:-} 2>&1 \
          | tee "$OUT/sentences_$split.txt"
        cp /tmp/sentences_"$split"/run-*/results.json "$OUT/sentences_$split.json"
      done
      cp /tmp/sentences_random/run-*/accuracy_by_length.png "$OUT/" ;;
    curve) timeout "${CURVE_S:-300}" python3 bench/curve_cost.py --model_name models/minilm-l6-h384-uncased \
             --data_dir data/sst2 --out "$OUT/curve_cost.json" 2>&1 | tee "$OUT/curve_cost.txt" ;;
    *) echo "unknown stage $stage (probe, timing, accuracy, fp16, sentences, curve)"; exit 2 ;;
  esac
done
