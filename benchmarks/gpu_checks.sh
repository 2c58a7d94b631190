#!/bin/bash
# The GPU checks, as one script for a lent GPU machine (run from the repository root; results
# under $OUT, default ./gpu_out): MLflow's wheels, carried in .whl/ (the machine has PyTorch but
# no MLflow), are installed to /tmp/site, then in parallel, each in its own SQLite store:
#   1. the paper's fig. 10 preset (30% of the pairs) on cuda, until settled, 25,000 at most;
#   2. the fig. 10 CPU preset (40%, until settled, 8,000 at most), seeds 0-4, on cuda;
#   3. the image-model benchmark (a ~1.5k-parameter CNN on 3x32x32, tracked / untracked) on cuda;
#   4. width2000: one trial of projects/sweeps/width.yaml at its widest (width 2,000, seed 0, the
#      spec's base: 1e5 steps, LC around 1,000 points at two radii, PGD per eps) on cuda, for the
#      wall time a GPU batch of the width spec needs (Ray is not on that machine: the trial runs
#      as the sweep's trainable would, runner.training.train on the spec's settings). Needs the
#      real MNIST test set carried: cp -r ../shared/data/mnist-t10k .devdata/ (git-ignored).
# Each job ends by SIGINT at its limit (the run is then KILLED with what it measured); the
# stores come back as one tarball, the logs' tails and a summary of every run as text.
# LIMIT=seconds per job (480); ONLY="cpu40_seed1 cnn" runs the jobs named (paper30,
# cpu40_seed0..4, cnn). The wheels, once, here (Python 3.12 on that machine):
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#     --platform any -d .whl mlflow-skinny==3.17.2 mlflow-tracing==3.17.2 sqlalchemy alembic \
#     torchattacks==3.3.0   (then delete the ones the machine has: numpy, requests, ...)
# Measured with it: docs/fig10.md and docs/speed.md.
set -u
OUT=${OUT:-$PWD/gpu_out}; mkdir -p "$OUT"
LIMIT=${LIMIT:-480}
REPO=$PWD
if [ -z "${SKIP_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$REPO
else
  export PYTHONPATH=$REPO
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 MPLBACKEND=Agg
nvidia-smi -L > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, mlflow; print(torch.__version__, mlflow.__version__)" >> "$OUT/gpu.txt" 2>&1 || exit 1
python3 -c "import torch; print(torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
W=/tmp/gpu_runs; rm -rf $W; mkdir -p $W
job() {   # name, then the command; ONLY="name ..." runs those jobs alone
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  mkdir -p $W/$name
  (cd $W/$name && MLFLOW_TRACKING_URI=sqlite:///$W/$name/mlflow.db /usr/bin/time -f "$name: %e s wall" \
     timeout -s INT -k 30 $LIMIT "$@" > $W/$name/log.txt 2>&1; echo "$name rc=$?" >> $W/$name/log.txt) &
}
job paper30 python3 -m grok_mlflow train --preset $REPO/projects/fig10_modular_addition.yaml --until settled --device cuda
for s in 0 1 2 3 4; do
  job cpu40_seed$s python3 -m grok_mlflow train --preset $REPO/projects/fig10_modular_addition_cpu.yaml --seed $s --device cuda
done
job cnn python3 $REPO/benchmarks/bench_image_model.py --device cuda
if [ -d $REPO/.devdata/mnist-t10k ]; then
  (cd $REPO/benchmarks && python3 -c "from pathlib import Path; from reproduce import write_mnist_split
write_mnist_split(Path('$REPO/.devdata/mnist-t10k'), Path('/tmp/mnist'))") > $W/mnist_split.txt 2>&1
  job width2000 python3 -c "import dataclasses
from grok_mlflow.runner.training import train
from grok_mlflow.sweeps.spec import load_spec
base = load_spec('$REPO/projects/sweeps/width.yaml').base
train(dataclasses.replace(base, width=2000, seed=0, data_root='/tmp/mnist', device='cuda'),
      experiment='width', run_name='width=2000,seed=0')"
fi
wait
for d in $W/*/; do echo "== $(basename $d)"; tail -c 1500 $d/log.txt | tr '\r' '\n' | tail -8; done > "$OUT/logs.txt"
for d in $W/*/; do
  [ -f $d/mlflow.db ] || continue
  MLFLOW_TRACKING_URI=sqlite:///$d/mlflow.db python3 - <<'PY'
import mlflow
for r in mlflow.search_runs(search_all_experiments=True, output_format="list"):
    m, t = r.data.metrics, r.data.tags
    wall = ((r.info.end_time or 0) - r.info.start_time) / 1000
    print(f"== {r.info.run_name} {r.info.status} seed={r.data.params.get('seed')} "
          f"steps={r.data.params.get('steps')} wall={wall:.0f}s device={r.data.params.get('device')}")
    print("  stop:", t.get("grok_mlflow.stop_note", "-"))
    for k in sorted(m):
        if k.startswith("grok/") or k in ("acc/test", "acc/train"):
            print(f"  {k} = {m[k]:.4g}")
PY
done > "$OUT/summary.txt" 2>&1
tar czf "$OUT/stores.tgz" -C $W $(cd $W && ls -d */mlflow.db) 2>/dev/null
ls -la "$OUT"
