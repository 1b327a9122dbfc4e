#!/usr/bin/env bash
# The one short GPU check of issues 5 and 7, prepared to run on a lent GPU machine (the `device` tool),
# whose image has torch, torchvision, scikit-learn, matplotlib and tqdm but no internet:
#
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/   # here, once
#   device run: bash tools/gpu_check.sh          carry: ["data/fashion-mnist"]       timeout_s: 480
#
# 1. `make bench`'s gpu-profile cases (synthetic images: img/s, speedup, MFU of the bf16 peak, memory);
# 2. a few hundred steps of the gpu-profile model (d=384, 4+4 blocks, 1024 tokens per image) on
#    Fashion-MNIST at 32x32 (CIFAR-10 cannot be fetched there): img/s and the loss curve.
# Everything lands in $OUT (the device tool brings it back) or in results/gpu_check.
set -euo pipefail
OUT=${OUT:-results/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD HYBRIDLIB_RUNS=/tmp/hybridlib_runs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m hybridlib bench --profiles gpu --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
python3 -m hybridlib train --profile gpu --objective hybrid --dataset fashion-mnist --steps "${STEPS:-300}" \
    --log-every 10 --checkpoint-every 1000 --out /tmp/hybridlib_runs/gpu_check --overwrite --no-progress \
    2>&1 | tee "$OUT/train.log"
cp /tmp/hybridlib_runs/gpu_check/history.csv "$OUT/history.csv"
python3 - "$OUT" <<'PY'
import csv, statistics, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/history.csv")))
steps = [int(r["step"]) for r in rows]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, key in zip(axes, ("loss", "img_per_s")):
    ax.plot(steps, [float(r[key]) for r in rows])
    ax.set_xlabel("step")
    ax.set_title(key)
fig.tight_layout()
fig.savefig(f"{out}/gpu_check.png", dpi=100)
steady = [float(r["img_per_s"]) for r in rows if int(r["step"]) > 50]  # after compiling and warm-up
print(f"median img/s after step 50: {statistics.median(steady):.0f}; final loss {rows[-1]['loss']}")
PY
