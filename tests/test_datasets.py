"""The real torchvision loaders on tiny files written in each dataset's real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct

import numpy as np
import pytest
import torch

from grok_mlflow.data import load_dataset
from grok_mlflow.settings import Settings, SettingsError
from grok_mlflow.training import check_settings

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


def test_mnist_loader_reads_idx_files(tmp_path):
    written = tiny_mnist(tmp_path)
    s = Settings(dataset="mnist", data_root=str(tmp_path), download=False, train_size=25,
                 batch_size=5, seed=3)
    data = load_dataset(s, CPU)
    assert data.x_train.shape == (25, 1, 28, 28) and data.x_test.shape == (15, 1, 28, 28)
    images, labels = written["train"]
    idx = np.sort(np.random.default_rng(3).permutation(40)[:25])
    assert torch.equal(data.x_train, torch.tensor(images[idx, None] / 255.0, dtype=torch.float32))
    assert data.y_train.tolist() == labels[idx].tolist()
    assert data.y_test.tolist() == written["t10k"][1].tolist()


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


def test_imagenette_loader_reads_image_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    wnids = ["n01440764", "n02102040", "n02979186"]
    for split, per_class in (("train", 3), ("val", 2)):
        for k, wnid in enumerate(wnids):
            folder = tmp_path / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full((40, 60, 3), 40 * k + 10, dtype=np.uint8)
                pixels += rng.integers(0, 5, pixels.shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG")
    s = Settings(dataset="imagenette", data_root=str(tmp_path), download=False, train_size=6,
                 batch_size=3, image_size=32)
    data = load_dataset(s, CPU)
    assert data.x_train.shape == (6, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert data.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    # a class's images have the grey level it was written with (JPEG is lossy: +-6 levels)
    for image, label in zip(data.x_test, data.y_test.tolist()):
        assert abs(image.mean().item() * 255 - (40 * label + 12)) < 6


@pytest.mark.parametrize("name, where", [
    ("mnist", "MNIST/raw/"), ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
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
