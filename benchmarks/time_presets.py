"""Wall time of whole preset runs (issue: every preset states its measured runtime).

Each preset runs through the real command line (``python -m grok_mlflow train --preset ...``),
tracked into a fresh SQLite store, and the script prints the wall time, training steps/s and
how many evaluations (LC + accuracy, PGD) were logged. ``--steps N`` shortens every run (the
evaluations stay on a log schedule, so a shortened run holds nearly as many of them).

Without internet the image datasets can be stood in for: ``--standin DIR`` writes files of each
dataset's real size and on-disk format (MNIST train = the real test set twice when
``../shared/data`` is there, otherwise random; CIFAR random pixels; Imagenette random JPEGs)
so that runtimes are measured on the real shapes. Accuracy on stand-in data means nothing.

    python benchmarks/time_presets.py projects/fig1_mnist_mlp.yaml --device cuda --standin /tmp/d
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import MNIST_T10K

REPO = Path(__file__).resolve().parents[1]


def write_standins(root: Path, datasets: set[str], seed: int = 0,
                   imagenette_per_class: tuple[int, int] = (947, 393)) -> None:
    """Write stand-in files of the real sizes and formats for the named datasets under root
    (Imagenette: ``imagenette_per_class`` train and val JPEGs per class, the real counts)."""
    rng = np.random.default_rng(seed)
    if "mnist" in datasets and not (root / "MNIST").exists():
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        if (MNIST_T10K / "t10k-images-idx3-ubyte.gz").exists():
            images = gzip.open(MNIST_T10K / "t10k-images-idx3-ubyte.gz").read()[16:]
            labels = gzip.open(MNIST_T10K / "t10k-labels-idx1-ubyte.gz").read()[8:]
        else:
            images = rng.integers(0, 256, 10_000 * 784, dtype=np.uint8).tobytes()
            labels = rng.integers(0, 10, 10_000, dtype=np.uint8).tobytes()
        for split, repeat in (("train", 6), ("t10k", 1)):
            n = 10_000 * repeat
            (raw / f"{split}-images-idx3-ubyte").write_bytes(
                struct.pack(">IIII", 2051, n, 28, 28) + images * repeat)
            (raw / f"{split}-labels-idx1-ubyte").write_bytes(
                struct.pack(">II", 2049, n) + labels * repeat)
    for name, folder, files, label_key, n_classes, meta in (
            ("cifar10", "cifar-10-batches-py",
             [(f"data_batch_{i}", 10_000) for i in range(1, 6)] + [("test_batch", 10_000)],
             "labels", 10, ("batches.meta", "label_names")),
            ("cifar100", "cifar-100-python", [("train", 50_000), ("test", 10_000)],
             "fine_labels", 100, ("meta", "fine_label_names"))):
        if name not in datasets or (root / folder).exists():
            continue
        (root / folder).mkdir(parents=True)
        for file, n in files:
            with open(root / folder / file, "wb") as f:
                pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                             label_key: rng.integers(0, n_classes, n).tolist()}, f)
        with open(root / folder / meta[0], "wb") as f:
            pickle.dump({meta[1]: [f"class{i}" for i in range(n_classes)]}, f)
    if "imagenette" in datasets and not (root / "imagenette2-160").exists():
        from PIL import Image

        wnids = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                 "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]
        for split, per_class in zip(("train", "val"), imagenette_per_class):  # 9,470 / 3,930
            for wnid in wnids:
                folder = root / "imagenette2-160" / split / wnid
                folder.mkdir(parents=True)
                for i in range(per_class):
                    pixels = rng.integers(0, 256, (160, 213, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=90)


def time_preset(preset: str, extra: list[str], env: dict) -> dict:
    """Run one preset through the CLI; return wall time and what the run logged."""
    import mlflow

    cmd = [sys.executable, "-m", "grok_mlflow", "train", "--preset", str(Path(preset).resolve()), "--no-progress",
           "--experiment", "time_presets", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{preset} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.search_runs([client.get_experiment_by_name("time_presets").experiment_id],
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    lc_key = next(k for k in run.data.metrics if k.startswith("lc") and k.endswith("/train"))
    adv_key = next((k for k in run.data.metrics if k.startswith("adv/acc/")), None)
    return {"wall_s": wall, "status": run.info.status,
            "steps": int(run.data.params["steps"]),
            "lc_evals": len(client.get_metric_history(run.info.run_id, lc_key)),
            "pgd_evals": len(client.get_metric_history(run.info.run_id, adv_key)) if adv_key else 0,
            "train_acc": run.data.metrics.get("acc/train")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="shorten every run to N steps")
    parser.add_argument("--standin", default=None, help="write stand-in data here and use it")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from grok_mlflow.settings import load_preset

    extra = ["--device", args.device]
    data_root = args.data_root
    if args.standin:
        data_root = args.standin
        wanted = {load_preset(p).dataset for p in args.presets}
        start = time.perf_counter()
        write_standins(Path(args.standin), wanted)
        print(f"stand-in data for {sorted(wanted)} ready in {time.perf_counter() - start:.0f} s")
    if data_root:
        extra += ["--data_root", data_root, "--download", "false"]
    if args.steps:
        extra += ["--steps", str(args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        for preset in args.presets:
            r = time_preset(preset, extra, env)
            print(f"{Path(preset).stem}: {r['wall_s']:.0f} s wall for {r['steps']} steps "
                  f"({r['lc_evals']} LC evals, {r['pgd_evals']} PGD evals), status {r['status']},"
                  f" acc/train {r['train_acc']}", flush=True)


if __name__ == "__main__":
    main()
