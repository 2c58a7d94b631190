"""Datasets: the embedded digits, and the real torchvision loaders on tiny files written in each
dataset's real on-disk format (Imagenette streamed)."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import pickle
import shutil
import struct

import mlflow
import numpy as np
import pytest
import torch

from grok_mlflow.runner.batches import StreamedBatches, training_batches
from grok_mlflow.runner.build import check_settings
from grok_mlflow.runner.data import DATASETS, load_dataset
from grok_mlflow.settings import Settings, SettingsError

from conftest import MNIST_T10K

CPU = torch.device("cpu")


def write_idx_images(path, images: np.ndarray):
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray):
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def tiny_mnist(root, n_train=40, n_test=15, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels = rng.integers(0, 10, n)
        write_idx_images(raw / f"{split}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
        data[split] = images, labels
    return data


def assert_seeded_idx_split(data, written, n_train: int, seed: int) -> None:
    """``data`` holds the seeded ``n_train`` of the written training images (scaled to [0, 1])
    and every written test label."""
    images, labels = written["train"]
    n_test = len(written["t10k"][1])
    assert data.x_train.shape == (n_train, 1, 28, 28) and data.x_test.shape == (n_test, 1, 28, 28)
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n_train])
    assert torch.equal(data.x_train, torch.tensor(images[idx, None] / 255.0, dtype=torch.float32))
    assert data.y_train.tolist() == labels[idx].tolist()
    assert data.y_test.tolist() == written["t10k"][1].tolist()


def test_mnist_loader_reads_idx_files(tmp_path):
    written = tiny_mnist(tmp_path)
    s = Settings(dataset="mnist", data_root=str(tmp_path), download=False, train_size=25,
                 batch_size=5, seed=3)
    assert_seeded_idx_split(load_dataset(s, CPU), written, n_train=25, seed=3)
    # a local copy holding fewer images than train_size asks for is refused, not shrunk
    with pytest.raises(SettingsError, match=r"^train_size: must be <= the 40 training samples"):
        load_dataset(dataclasses.replace(s, train_size=41), CPU)


@pytest.mark.skipif(not MNIST_T10K.exists(), reason="shared MNIST test set not present")
def test_mnist_loader_on_the_real_test_set(tmp_path):
    tiny_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(MNIST_T10K / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    data = load_dataset(Settings(dataset="mnist", data_root=str(tmp_path), download=False,
                                 train_size=20, batch_size=10), CPU)
    assert data.x_test.shape == (10_000, 1, 28, 28)
    counts = torch.bincount(data.y_test, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the README's
    assert 0.12 < data.x_test.mean() < 0.14 and data.x_test.max() == 1.0


DEBIAN_FASHION = __import__("pathlib").Path("/usr/share/datasets/fashion-mnist")


def tiny_fashion_gz(folder, n_train=30, n_test=12, seed=1):
    """The four official Fashion-MNIST files, gzip-compressed, flat in ``folder`` (as Debian's
    dataset-fashion-mnist installs them), with random images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        write_idx_images(folder / "plain", images)
        write_idx_labels(folder / "plain_labels", labels)
        for plain, name in (("plain", f"{split}-images-idx3-ubyte"),
                            ("plain_labels", f"{split}-labels-idx1-ubyte")):
            with open(folder / plain, "rb") as src, gzip.open(folder / f"{name}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            (folder / plain).unlink()
        data[split] = images, labels
    return data


def test_fashion_mnist_reads_the_gzip_files_where_they_lie(tmp_path):
    """Issue 52: Debian's package installs the four *.gz files in one folder; the loader reads
    them from there (unpacked once into the cache: $XDG_CACHE_HOME, the test's own), leaving
    the folder as it was; a truncated file is one line naming how to get the files."""
    package = tmp_path / "package"
    written = tiny_fashion_gz(package)
    before = sorted(p.name for p in package.iterdir())
    s = Settings(dataset="fashion_mnist", data_root=str(package), download=False,
                 train_size=20, batch_size=5, seed=2)
    assert_seeded_idx_split(load_dataset(s, CPU), written, n_train=20, seed=2)
    assert sorted(p.name for p in package.iterdir()) == before          # nothing written there
    cache = tmp_path / "cache" / "grok_mlflow" / "fashion_mnist" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{split}-{kind}-idx{d}-ubyte" for split in ("train", "t10k")
        for kind, d in (("images", 3), ("labels", 1)))
    # torchvision's own layout is read as it is
    assert load_dataset(dataclasses.replace(
        s, data_root=str(tmp_path / "cache" / "grok_mlflow" / "fashion_mnist")), CPU
        ).y_test.tolist() == written["t10k"][1].tolist()
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in package.iterdir():
        (broken / p.name).write_bytes(p.read_bytes()[:40])         # truncated gzip files
    with pytest.raises(SettingsError) as info:
        load_dataset(dataclasses.replace(s, data_root=str(broken)), CPU)
    message = str(info.value)
    assert message.startswith("dataset: fashion_mnist not found under data_root=")
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message


@pytest.mark.skipif(not DEBIAN_FASHION.exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
def test_a_cnn_trains_on_the_real_fashion_mnist_files(tmp_path, capsys):
    """Issue 52: `grok-mlflow train --dataset fashion_mnist --data_root ROOT --model cnn` on the
    official files as Debian installs them; a bad root is one line, exit 2, no run."""
    from mlflow import MlflowClient

    from grok_mlflow.cli import main

    from conftest import only_run

    args = ["train", "--dataset", "fashion_mnist", "--model", "cnn", "--width", "8",
            "--train_size", "200", "--batch_size", "50", "--steps", "100", "--eval_points", "4",
            "--eval_size", "500", "--lc_samples", "20", "--adv_samples", "50", "--adv_points",
            "2", "--partition_every", "0", "--no-log_model", "--download", "false",
            "--no-progress"]
    assert main([*args, "--data_root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install dataset-fashion-mnist" in err[0]
    assert not MlflowClient().search_experiments() or not [
        r for e in MlflowClient().search_experiments()
        for r in MlflowClient().search_runs([e.experiment_id])]
    assert main([*args, "--data_root", str(DEBIAN_FASHION)]) == 0
    run = only_run()
    assert run.data.params["dataset"] == "fashion_mnist" and run.info.status == "FINISHED"
    # 100 steps of a width-8 CNN on 200 images: far above chance (0.1) on the real test set
    assert 0.3 < run.data.metrics["acc/test"] <= 1.0 and "lc/train" in run.data.metrics
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json"))
    assert config["n_train"] == 200


def write_cifar(root, folder, files, label_key, meta_file, meta_key, n_classes, rng):
    base = root / folder
    base.mkdir(parents=True)
    written = {}
    for name, n in files:
        data = rng.integers(0, 256, (n, 3 * 32 * 32)).astype(np.uint8)
        labels = rng.integers(0, n_classes, n).tolist()
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, label_key: labels}, f)
        written[name] = data, labels
    with open(base / meta_file, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, f)
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loaders_read_python_pickles(tmp_path, name):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        written = write_cifar(tmp_path, "cifar-10-batches-py",
                              [(f"data_batch_{i}", 6) for i in range(1, 6)] + [("test_batch", 7)],
                              "labels", "batches.meta", "label_names", 10, rng)
        train_names, test_name, classes = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", 10
    else:
        written = write_cifar(tmp_path, "cifar-100-python", [("train", 30), ("test", 7)],
                              "fine_labels", "meta", "fine_label_names", 100, rng)
        train_names, test_name, classes = ["train"], "test", 100
    s = Settings(dataset=name, data_root=str(tmp_path), download=False, train_size=20,
                 batch_size=10)
    data = load_dataset(s, CPU)
    assert data.num_classes == classes
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (7, 3, 32, 32)
    test_images, test_labels = written[test_name]
    expected = torch.tensor(test_images.reshape(7, 3, 32, 32) / 255.0, dtype=torch.float32)
    assert torch.equal(data.x_test, expected) and data.y_test.tolist() == test_labels
    all_train = np.concatenate([written[n][0] for n in train_names])
    idx = np.sort(np.random.default_rng(0).permutation(30)[:20])
    assert torch.equal(data.x_train, torch.tensor(all_train[idx].reshape(20, 3, 32, 32) / 255.0,
                                                  dtype=torch.float32))


WNIDS = ["n01440764", "n02102040", "n02979186"]


def image_folders(top, classes, per_split, level, size, seed):
    """``top/{train,val}/<class>/*.JPEG``: JPEGs of ``size`` (H, W) at one grey level per class
    (``level[0] * k + level[1]``) plus coarse noise (10x10-pixel blocks of 0..8 levels, mean 4),
    so that every image differs even when shrunk to 16 pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    for split, per_class in zip(("train", "val"), per_split):
        for k, wnid in enumerate(classes):
            folder = top / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                blocks = rng.integers(0, 9, (h // 10, w // 10, 1), dtype=np.uint8)
                noise = blocks.repeat(10, axis=0).repeat(10, axis=1)
                pixels = np.full((h, w, 3), level[0] * k + level[1], dtype=np.uint8) + noise
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG")


def tiny_imagenette(root, train_per_class=3, val_per_class=2):
    """Imagenette's layout (imagenette2-160/{train,val}/<wnid>/*.JPEG), 60x40 JPEGs at grey
    level 40 k + 10."""
    image_folders(root / "imagenette2-160", WNIDS, (train_per_class, val_per_class), (40, 10),
                  (40, 60), seed=0)


def test_imagenette_loader_reads_image_folders(tmp_path):
    tiny_imagenette(tmp_path)
    s = Settings(dataset="imagenette", data_root=str(tmp_path), download=False, train_size=6,
                 batch_size=3, image_size=32)
    data = load_dataset(s, CPU)
    assert data.x_train.shape == (6, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert sorted(data.y_test.tolist()) == [0, 0, 1, 1, 2, 2]
    # a class's images have the grey level it was written with (JPEG is lossy: +-6 levels)
    for image, label in zip(data.x_test, data.y_test.tolist()):
        assert abs(image.mean().item() * 255 - (40 * label + 14)) < 6
    # the training set streams: uint8 images decoded on access, the same pixels as the tensors
    assert data.n_train == len(data.train_stream) == 6
    streamed = torch.stack([data.train_stream[i][0] for i in range(6)])
    assert streamed.dtype == torch.uint8 and streamed.shape == (6, 3, 32, 32)
    assert sorted(map(bytes, streamed.numpy())) == sorted(
        bytes(np.round(x.numpy() * 255).astype(np.uint8)) for x in data.x_train)


def test_a_folder_that_is_not_an_imagenette_class_is_named(tmp_path):
    tiny_imagenette(tmp_path)
    (tmp_path / "imagenette2-160" / "train" / "cats").mkdir()
    s = Settings(dataset="imagenette", data_root=str(tmp_path), download=False, batch_size=2)
    with pytest.raises(SettingsError) as info:
        load_dataset(s, CPU)
    message = str(info.value)
    assert message.startswith("dataset: ") and "'cats' that is not an Imagenette class" in message
    assert "n01440764" in message and "\n" not in message


def _streamed(tmp_path, **overrides):
    tiny_imagenette(tmp_path, train_per_class=4)       # 12 training images
    base = dict(dataset="imagenette", data_root=str(tmp_path), download=False, train_size=12,
                batch_size=4, image_size=16, data_workers=2)
    return Settings(**{**base, **overrides})


def test_imagenette_streams_each_training_image_once_per_epoch(tmp_path):
    s = _streamed(tmp_path, eval_size=12)
    data = load_dataset(s, CPU)
    batches = training_batches(data, s)
    assert isinstance(batches, StreamedBatches)
    # a streamed image is found among the decoded ones exactly (same decoding, same scaling)
    pixels = {bytes(x.numpy()): i for i, x in enumerate(data.x_train)}
    labels = data.y_train.tolist()
    epochs = []
    with contextlib.closing(batches):
        for _epoch in range(3):
            seen = []
            for _ in range(3):                           # 12 // 4 batches per epoch
                x, y = next(batches)
                assert x.dtype == torch.float32 and x.shape == (4, 3, 16, 16)
                index = [pixels[bytes(image.numpy())] for image in x]
                assert y.tolist() == [labels[i] for i in index]
                seen += index
            assert sorted(seen) == list(range(12))
            epochs.append(seen)
    assert epochs[0] != epochs[1] != epochs[2]           # a fresh order each epoch
    # the order is a function of (seed, batch number): workers or not, resumed or not
    with contextlib.closing(training_batches(data, dataclasses.replace(s, data_workers=0),
                                             done=4)) as resumed:
        x, _ = next(resumed)
    assert [pixels[bytes(image.numpy())] for image in x] == epochs[1][4:8]


def test_stream_workers_survive_a_ctrl_c_sent_to_them(tmp_path):
    import multiprocessing
    import os
    import signal

    s = _streamed(tmp_path)
    data = load_dataset(s, CPU)
    with contextlib.closing(training_batches(data, s)) as batches:
        next(batches), next(batches)   # one batch from each worker: both have initialised
        workers = multiprocessing.active_children()
        assert len(workers) == 2
        for worker in workers:                   # a terminal's Ctrl-C reaches them too
            os.kill(worker.pid, signal.SIGINT)
        for _ in range(12):                      # more than the 8 batches prefetched
            next(batches)
        assert all(w.is_alive() for w in workers)
    for worker in workers:
        worker.join(timeout=10)
    assert not any(w.is_alive() for w in workers)      # close() stopped them


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streamed_batches_reach_cuda_equal_to_the_cpu_ones(tmp_path):
    s = _streamed(tmp_path)
    cpu, cuda = load_dataset(s, CPU), load_dataset(s, torch.device("cuda"))
    with (contextlib.closing(training_batches(cpu, s)) as on_cpu,
          contextlib.closing(training_batches(cuda, s)) as on_cuda):
        for _ in range(5):                        # pinned memory, non-blocking copies
            (xa, ya), (xb, yb) = next(on_cpu), next(on_cuda)
            # the same pixels; CUDA divides by 255 as a multiplication by 1/255 (1 ulp apart)
            assert xb.is_cuda and torch.equal((xa * 255).round(), (xb.cpu() * 255).round())
            assert torch.allclose(xa, xb.cpu(), rtol=0, atol=1e-7) and torch.equal(ya, yb.cpu())


def _truncate_all(folder):
    paths = sorted(folder.rglob("*.JPEG"))
    for path in paths:
        path.write_bytes(path.read_bytes()[:100])
    return paths


def _assert_names_a_file(err, paths):
    message = str(err)
    assert message.startswith("dataset: cannot decode ") and message.endswith(
        "replace or remove the file") and "\n" not in message
    assert any(str(path) in message for path in paths)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_image_is_named_in_one_line(tmp_path, workers):
    from grok_mlflow.runner.data import UnreadableImage

    s = _streamed(tmp_path, data_workers=workers, eval_size=1)
    train_dir = tmp_path / "imagenette2-160" / "train"
    data = load_dataset(s, CPU)
    bad = _truncate_all(train_dir)                 # files are read lazily: now they fail
    with pytest.raises(UnreadableImage) as info:   # in the training stream
        with contextlib.closing(training_batches(data, s)) as batches:
            next(batches)
    _assert_names_a_file(info.value, bad)
    with pytest.raises(UnreadableImage) as info:   # while loading: the evaluation subset
        load_dataset(s, CPU)
    _assert_names_a_file(info.value, bad)


def test_imagenette_decodes_only_eval_size_images_and_checks_train_size(tmp_path):
    s = _streamed(tmp_path, eval_size=5, random_labels=12, seed=3)
    data = load_dataset(s, CPU)
    assert len(data.x_train) == len(data.x_test) == 5 and data.n_train == 12
    # the evaluation labels are the streamed (random) labels of the same images
    stream_labels = {bytes(np.round(data.train_stream[i][0].numpy()).astype(np.uint8)):
                     data.train_stream[i][1] for i in range(12)}
    for x, y in zip(data.x_train, data.y_train.tolist()):
        assert stream_labels[bytes(np.round(x.numpy() * 255).astype(np.uint8))] == y
    with pytest.raises(SettingsError, match=r"^train_size: must be <= the 12 training samples of imagenette "):
        load_dataset(dataclasses.replace(s, train_size=100), CPU)


def test_a_streamed_run_resumes_bitwise(tmp_path, tracking_uri):
    from grok_mlflow.runner.training import train

    s = _streamed(tmp_path / "data", model="cnn", width=4, depth=2, steps=7, eval_points=3,
                  lc_samples=4, lc_directions=4, adv_samples=4, adv_points=2, partition_every=0)
    whole = train(s, progress=False)
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{whole.run_id}/config.json"))
    assert config["n_train"] == 12 and config["n_accuracy"] == {"train": 12, "test": 6}
    first = train(dataclasses.replace(s, steps=4), progress=False)     # checkpoint at step 4
    resumed = train(s, progress=False, resume=first.run_id)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name, where", [
    ("mnist", "MNIST/raw/"), ("fashion_mnist", "apt-get install dataset-fashion-mnist"),
    ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
    ("imagenette", "imagenette2-160.tgz")])
def test_a_missing_dataset_says_where_the_files_go(tmp_path, name, where):
    s = Settings(dataset=name, data_root=str(tmp_path), download=False)
    with pytest.raises(SettingsError) as info:
        load_dataset(s, CPU)
    message = str(info.value)
    assert message.startswith(f"dataset: {name} not found under data_root=") and where in message
    assert "\n" not in message


def test_random_labels_replace_a_seeded_count_or_fraction():
    clean = load_dataset(Settings(), CPU).y_train
    by_count = load_dataset(Settings(random_labels=300), CPU).y_train
    by_fraction = load_dataset(Settings(random_labels=0.3), CPU).y_train
    assert torch.equal(by_count, by_fraction)               # 0.3 x 1000 == 300
    changed = (by_count != clean).sum().item()
    assert 230 < changed <= 300                             # ~10% of draws keep the true label
    assert torch.equal(by_count, load_dataset(Settings(random_labels=300), CPU).y_train)
    with pytest.raises(SettingsError, match="random_labels: must be <= train_size"):
        check_settings(Settings(random_labels=2000, device="cpu"))


def test_random_labels_one_draws_every_training_label():
    """1 is the fraction 1 (the authors' label noise: every training label drawn at random), the
    same draw as the count train_size; a 10-class uniform draw keeps ~10% of the true labels."""
    clean = load_dataset(Settings(), CPU).y_train
    every = load_dataset(Settings(random_labels=1), CPU).y_train
    assert torch.equal(every, load_dataset(Settings(random_labels=1000), CPU).y_train)
    assert 0.05 < (every == clean).float().mean().item() < 0.15
    assert torch.bincount(every, minlength=10).min().item() > 60    # ~100 per class


def test_ctrl_c_in_a_terminal_stops_a_streamed_run_at_a_step_boundary(tmp_path, tracking_uri):
    """A terminal's Ctrl-C reaches the DataLoader workers too (the whole process group): the
    workers must not die of it, so that the loop stops cleanly between two steps."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from conftest import subprocess_env

    tiny_imagenette(tmp_path / "data", train_per_class=4)
    args = [sys.executable, "-m", "grok_mlflow", "train", "--dataset", "imagenette",
            "--data_root", str(tmp_path / "data"), "--download", "false", "--train_size", "12",
            "--batch_size", "4", "--image_size", "16", "--data_workers", "2", "--model", "cnn",
            "--width", "4", "--depth", "2", "--steps", "1000000", "--eval_points", "300",
            "--lc_samples", "4", "--lc_directions", "4", "--adv_points", "0",
            "--partition_every", "0", "--checkpoint_every_s", "1", "--no-progress"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri),
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    client = MlflowClient()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:       # wait until it has measured a few steps
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        if runs and "acc/train" in runs[0].data.metrics:
            break
        time.sleep(0.5)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)       # as a terminal does: the process and its workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint written" in err and "exited unexpectedly" not in err
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "KILLED"


def test_digits_is_real_scaled_and_split_by_seed():
    data = load_dataset(Settings(train_size=1000, seed=0), CPU)
    assert data.x_train.shape == (1000, 1, 8, 8) and data.x_test.shape == (797, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    # 16 grey levels, as sklearn ships them
    assert torch.equal(torch.unique(data.x_train * 16), torch.arange(17, dtype=torch.float32))
    assert set(data.y_train.tolist()) == set(range(10)) and data.num_classes == 10
    again = load_dataset(Settings(train_size=1000, seed=0), CPU)
    other = load_dataset(Settings(train_size=1000, seed=1), CPU)
    assert torch.equal(again.x_train, data.x_train)
    assert not torch.equal(other.x_train, data.x_train)
    # train and test are disjoint: no test image equals a training image row-for-row
    everything = torch.cat([data.x_train, data.x_test]).flatten(1)
    assert len(everything) == 1797



def test_dataset_registry_entries_are_documented():
    for spec in DATASETS.values():     # token data has no PGD (budgets in pixel units)
        assert spec.description and bool(spec.default_adv_eps) != spec.tokens


def tiny_imagenet(root, classes=("n01440764", "n01443537", "n01484850"), train_per_class=4,
                  val_per_class=2):
    """ImageNet's ImageFolder layout (imagenet/{train,val}/<wnid>/*.JPEG), 70x50 JPEGs at grey
    level 60 k + 20."""
    image_folders(root / "imagenet", classes, (train_per_class, val_per_class), (60, 20),
                  (50, 70), seed=1)


def test_imagenet_reads_an_image_folder_tree_streamed(tmp_path):
    tiny_imagenet(tmp_path)
    s = Settings(dataset="imagenet", data_root=str(tmp_path), train_size=10, batch_size=5,
                 image_size=32, eval_size=6, data_workers=0, download=False)
    data = load_dataset(s, torch.device("cpu"))
    assert data.num_classes == 3 and data.n_train == 10
    assert data.x_train.shape == (6, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    # each image is its class's grey level (60 k + 20, plus noise of mean 4) after resize and crop
    grey = data.x_train.mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(grey, 60 * data.y_train.double().float() + 24, atol=3)
    x, y = next(training_batches(data, s))                       # decoded by the stream
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    with pytest.raises(SettingsError, match="train_size: must be <= the 12 training images"):
        load_dataset(dataclasses.replace(s, train_size=13), torch.device("cpu"))


def test_imagenet_refuses_a_val_class_unknown_to_train_and_says_where_files_go(tmp_path):
    tiny_imagenet(tmp_path)
    (tmp_path / "imagenet" / "val" / "n99999999").mkdir()
    s = Settings(dataset="imagenet", data_root=str(tmp_path), train_size=4, batch_size=2,
                 download=False)
    with pytest.raises(SettingsError, match="holds class folder.s. n99999999 that"):
        load_dataset(s, torch.device("cpu"))
    missing = dataclasses.replace(s, data_root=str(tmp_path / "nowhere"))
    with pytest.raises(SettingsError, match="DATA_ROOT/imagenet/train/<class>/"):
        load_dataset(missing, torch.device("cpu"))
