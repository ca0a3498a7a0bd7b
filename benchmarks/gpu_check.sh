#!/bin/bash
# The CUDA checks of the training on a GPU host, in one run from the project root:
#
#   OUT=DIR bash benchmarks/gpu_check.sh                 # every step
#   OUT=DIR STEPS="tests bench" bash benchmarks/gpu_check.sh
#
# Steps (in this order; STEPS picks some): tests (tests/test_cuda.py), bench
# (benchmarks/bench_train.py --device cuda: eager and captured events/s and their ratio),
# simulate (benchmarks/bench_simulate.py --device cuda on a 2M-event file with LZ4: the
# decoder forward, each stage's rate, end to end and its fraction of the slowest stage),
# train (one epoch of `turbosim-hep train` at batch 100 and 1,000, with and without
# --no-graphs), demo (`turbosim-hep demo --device cuda`, its wall time), suite (the whole
# `python -m pytest`). Each step has its own time limit, so a stuck one leaves time for
# the rest; the logs in $OUT are kept few (7 files). Where the host lacks the project's
# pure-Python dependencies, carry them as wheels in .gpu/whl (../shared/gpu/README.md):
# they are installed first when present.
set -u
: "${OUT:?set OUT to a directory for the logs}"
STEPS=${STEPS:-"tests bench simulate train demo suite"}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/steps.log"; }
wants() { [[ " $STEPS " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.log"
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl >>"$OUT/env.log" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
python3 -c "import torch, turbosim_hep; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/env.log"
TS="python3 -m turbosim_hep"
SAMPLE=turbosim_hep/data/ttbar_sample.root
stamp "setup done; steps: $STEPS"

if wants tests; then
  timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py >"$OUT/cuda_tests.log" 2>&1
  stamp "tests/test_cuda.py rc $?: $(tail -1 "$OUT/cuda_tests.log")"
fi

if wants bench; then
  timeout 180 python3 benchmarks/bench_train.py --device cuda --batch-sizes 100 1000 \
    --gp-intervals 1 4 --seconds 5 >"$OUT/bench.log" 2>&1
  stamp "bench_train rc $?"
  grep -E "^(train|decoder)" "$OUT/bench.log" | tee -a "$OUT/steps.log"
fi

if wants simulate; then
  timeout 300 python3 benchmarks/bench_simulate.py --device cuda --events 2000000 \
    --forward-events 2000000 --rss-events 0 --pythia-events 0 --stage-repeat 2 \
    --compression lz4:1 >"$OUT/simulate.log" 2>&1
  stamp "bench_simulate rc $?"
  grep -E "^(decoder|stage|end to end|simulate)" "$OUT/simulate.log" | tee -a "$OUT/steps.log"
fi

if wants train; then
  for b in 100 1000; do
    for mode in graphs no-graphs; do
      flag=$([ "$mode" = no-graphs ] && echo --no-graphs)
      timeout 90 $TS train $SAMPLE -o /tmp/t$b$mode.pt --epochs 1 --batch-size $b \
        --device cuda --force --quiet $flag >>"$OUT/train.log" 2>&1
      stamp "train batch $b $mode rc $?: $(grep -o '"events_per_second": [0-9.]*' /tmp/t$b$mode.log.jsonl | tail -1)"
    done
  done
fi

if wants demo; then
  timeout 300 $TS demo -o /tmp/demo-gpu --device cuda --force --no-progress >"$OUT/demo.log" 2>&1
  stamp "demo rc $?: $(grep -a 'wall time' "$OUT/demo.log")"
fi

if wants suite; then
  timeout 300 python3 -m pytest -q -n 8 -p no:cacheprovider >"$OUT/pytest.log" 2>&1
  stamp "pytest rc $?: $(tail -1 "$OUT/pytest.log")"
fi
