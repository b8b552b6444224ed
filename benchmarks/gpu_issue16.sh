#!/usr/bin/env bash
# The GPU measurements of docs/performance.md, in one command on the device machine
# (after `bash ../shared/tools/device-wheels.sh` here; carry .whl). Writes $OUT/*.json and $OUT/*.log.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, fastai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'fastai', fastai.__version__)" | tee -a "$OUT/gpu.txt"
# All five paths side by side, then 50 epochs of fit_one_cycle for the package's path (compile time included)
# and for the eager path.
if ! timeout 420 python3 benchmarks/throughput.py --device cuda --repeats 2 --profile --to-result 50 \
    --json "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1; then
  echo "full run failed (rc $?); the baselines alone:" | tee -a "$OUT/throughput.log"
  timeout 150 python3 benchmarks/throughput.py --device cuda --repeats 2 --paths eager,plain,per-item,datablock \
    --json "$OUT/baselines.json" > "$OUT/baselines.log" 2>&1
fi
tail -c 6000 "$OUT/throughput.log"
