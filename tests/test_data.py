"""Data: the CIFAR-10 reader, the procedural stand-in, normalization, batched augmentation, batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resnet_lib.data as data_mod
from resnet_lib.data import (
    CIFAR10_CLASSES,
    CIFAR10_LABEL,
    STANDIN_CLASSES,
    STANDIN_LABEL,
    DatasetNotFoundError,
    augment_batch,
    iterate_batches,
    load_cifar10,
    load_dataset,
    make_standin,
)
from resnet_lib.profiles import DataSpec

# ----------------------------------------------------------------------------- CIFAR-10

TRAIN_PER_BATCH, N_TEST = 4, 6


def _pixels(n: int, offset: int) -> np.ndarray:
    """``n`` distinct CIFAR rows of 3072 bytes: 1024 red, 1024 green, 1024 blue, each row-major."""
    rng = np.random.default_rng(offset)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar_folder(root: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """Write a tiny ``cifar-10-batches-py`` folder: data_batch_1..5, test_batch, batches.meta.

    The real files are Python 2 pickles whose byte-string keys torchvision reads with
    ``encoding="latin1"``, i.e. as ``"data"``, ``"labels"`` and ``"label_names"``.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_rows, train_labels = [], []
    for i in range(1, 6):
        rows, labels = _pixels(TRAIN_PER_BATCH, i), [(i + k) % 10 for k in range(TRAIN_PER_BATCH)]
        entry = {"batch_label": f"training batch {i} of 5", "data": rows, "labels": labels}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(entry, protocol=2))
        train_rows.append(rows)
        train_labels += labels
    test_rows, test_labels = _pixels(N_TEST, 99), [k % 10 for k in range(N_TEST)]
    entry = {"batch_label": "testing batch 1 of 1", "data": test_rows, "labels": test_labels}
    (folder / "test_batch").write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": TRAIN_PER_BATCH, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(train_rows), train_labels, test_rows, test_labels


def test_the_cifar10_reader_reads_a_cifar_format_folder(tmp_path):
    train_rows, train_labels, test_rows, test_labels = write_cifar_folder(tmp_path)
    tx, ty, vx, vy = load_cifar10(tmp_path, download=False)
    assert tx.dtype == torch.uint8 and tx.shape == (5 * TRAIN_PER_BATCH, 3, 32, 32)
    assert vx.shape == (N_TEST, 3, 32, 32)
    # Row layout: channel-major planes of 32x32, row-major; NCHW is a plain reshape.
    assert torch.equal(tx, torch.from_numpy(train_rows).reshape(-1, 3, 32, 32))
    assert torch.equal(vx, torch.from_numpy(test_rows).reshape(-1, 3, 32, 32))
    assert tx[0, 1, 2, 3] == train_rows[0][1024 + 2 * 32 + 3]
    assert ty.tolist() == train_labels and vy.tolist() == test_labels and ty.dtype == torch.int64


def test_load_dataset_uses_cifar10_from_disk_silently(tmp_path, capsys):
    train_rows, train_labels, _, _ = write_cifar_folder(tmp_path)
    for dataset in ("cifar10", "auto"):
        ds = load_dataset(DataSpec(dataset=dataset), root=tmp_path, normalize=False)
        assert (ds.name, ds.label, ds.classes) == ("cifar10", CIFAR10_LABEL, CIFAR10_CLASSES)
        assert torch.equal(ds.train_x, torch.from_numpy(train_rows).reshape(-1, 3, 32, 32).float())
        assert ds.train_y.tolist() == train_labels and len(ds.test_y) == N_TEST
    assert capsys.readouterr().out == ""
    # The data root comes from $RESNET_BOOK_DATA when no root is given.
    ds = load_dataset(DataSpec(dataset="cifar10", n_train=8, n_test=2, n_val=4, image_size=8), root=tmp_path)
    assert ds.describe() == {
        "name": "cifar10",
        "label": CIFAR10_LABEL,
        "n_train": 8,
        "n_val": 4,
        "n_test": 2,
        "image_size": 8,
        "normalized": True,
    }


def test_the_data_root_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data_mod.DATA_ENV, str(tmp_path))
    write_cifar_folder(tmp_path)
    assert load_dataset(DataSpec(dataset="cifar10")).name == "cifar10"


def _garble(folder: Path, how: str) -> None:
    if how == "empty":
        return
    if how == "missing test_batch":
        (folder / "test_batch").unlink()
    elif how == "not pickles":
        for f in folder.iterdir():
            f.write_text("this is not CIFAR-10\n")
    elif how == "pickled lists":
        for f in folder.iterdir():
            f.write_bytes(pickle.dumps([1, 2, 3]))
    elif how == "wrong image size":
        entry = {"data": np.zeros((4, 100), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / "data_batch_3").write_bytes(pickle.dumps(entry))
    elif how == "truncated":
        f = folder / "data_batch_2"
        f.write_bytes(f.read_bytes()[:500])


@pytest.mark.parametrize(
    "how", ["empty", "missing test_batch", "not pickles", "pickled lists", "wrong image size", "truncated"]
)
def test_a_folder_that_does_not_hold_cifar10_gets_one_clear_error(tmp_path, how):
    if how == "empty":
        (tmp_path / "cifar-10-batches-py").mkdir()
    else:
        write_cifar_folder(tmp_path)
    _garble(tmp_path / "cifar-10-batches-py", how)
    with pytest.raises(DatasetNotFoundError, match="does not hold CIFAR-10") as err:
        load_dataset(DataSpec(dataset="cifar10"), root=tmp_path)
    assert "\n" not in str(err.value) and "data_batch_1..5, test_batch and batches.meta" in str(err.value)


def test_cifar10_without_data_or_network_raises_one_line(tmp_path, monkeypatch):
    attempts = []

    def offline(root, timeout_s):
        attempts.append(root)
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>\nmore detail")

    monkeypatch.setattr(data_mod, "_download_cifar10", offline)
    with pytest.raises(DatasetNotFoundError, match="could not be downloaded") as err:
        load_dataset(DataSpec(dataset="cifar10"), root=tmp_path)
    assert attempts == [tmp_path]
    assert "\n" not in str(err.value) and "dataset='standin'" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="is not in"):  # no download asked for
        load_cifar10(tmp_path, download=False)


def test_auto_falls_back_to_the_standin_with_one_line(tmp_path, capsys):
    ds = load_dataset(DataSpec(dataset="auto", n_train=20, n_test=10), root=tmp_path)
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("CIFAR-10 unavailable, using the procedural stand-in")
    assert "Traceback" not in captured.out
    assert (ds.name, ds.label, ds.classes) == ("standin", STANDIN_LABEL, STANDIN_CLASSES)
    assert "not real photos" in ds.label  # figure titles name the data honestly
    load_dataset(DataSpec(dataset="auto", n_train=20, n_test=10), root=tmp_path, verbose=False)
    assert capsys.readouterr().out == ""


def test_bad_dataset_names_and_sizes_are_refused(tmp_path):
    write_cifar_folder(tmp_path)
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; choose one of: auto, cifar10, standin"):
        load_dataset(DataSpec(dataset="imagenet"))
    for size in (12, 0, 64, -8, 16.0):
        with pytest.raises(ValueError, match=r"image_size must divide 32") as err:
            load_dataset(DataSpec(dataset="standin", n_train=10, n_test=10, image_size=size))
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"n_val=30 leaves no training images"):
        load_dataset(DataSpec(dataset="cifar10", n_val=30), root=tmp_path)  # 20 images on disk
    for field in ("n_train", "n_test"):
        with pytest.raises(ValueError, match=rf"DataSpec.{field} must be a whole number >= 1 or None, got 0"):
            load_dataset(DataSpec(dataset="standin", **{field: 0}))


# ------------------------------------------------------------------------ the stand-in


def test_the_standin_is_identical_for_a_seed_and_differs_for_another():
    a, b, c = make_standin(40, 20, seed=0), make_standin(40, 20, seed=0), make_standin(40, 20, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])
    train_x, train_y, test_x, _ = a
    assert train_x.shape == (40, 3, 32, 32) and train_x.dtype == torch.uint8 and test_x.shape == (20, 3, 32, 32)
    assert torch.bincount(train_y, minlength=10).tolist() == [4] * 10  # balanced
    assert not torch.equal(train_x[:20], test_x)  # train and test are different draws
    assert not torch.equal(train_y, torch.arange(40) % 10)  # shuffled


def test_the_standin_is_not_linearly_trivial():
    # Ridge regression onto one-hot labels from standardized 8x8 pixels (192 features).
    # Measured test accuracy over stand-in seeds 0-4: 0.248-0.269 (a logistic regression on the
    # full 32x32 pixels: 0.24-0.29; chance is 0.10). The bounds leave wide room for a change
    # of platform, and still say what matters: far from perfect, yet not noise.
    train_x, train_y, test_x, test_y = make_standin(2000, 1000, seed=0)

    def features(x):
        return F.avg_pool2d(x.float() / 255, 4).flatten(1)

    xtr, xte = features(train_x), features(test_x)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr = torch.cat([(xtr - mean) / std, torch.ones(len(xtr), 1)], 1)
    xte = torch.cat([(xte - mean) / std, torch.ones(len(xte), 1)], 1)
    targets = F.one_hot(train_y, 10).float()
    w = torch.linalg.solve(xtr.T @ xtr + 100.0 * torch.eye(xtr.shape[1]), xtr.T @ targets)
    accuracy = ((xte @ w).argmax(1) == test_y).float().mean().item()
    assert 0.15 < accuracy < 0.5, accuracy


def test_load_dataset_does_what_its_docstring_says():
    # "scaled to [0, 1], averaged down to image_size, per-pixel training mean subtracted,
    # divided by the training set's overall standard deviation"; the first n_val are held out.
    ds = load_dataset(DataSpec(dataset="standin", n_train=200, n_test=50, n_val=100, image_size=16), verbose=False)
    train_x, train_y, test_x, test_y = make_standin(300, 50, seed=0)  # the same draw
    scaled = F.avg_pool2d(train_x.float() / 255, 2)
    val, train = scaled[:100], scaled[100:]
    mean, std = train.mean(0, keepdim=True), train.std()
    assert torch.allclose(ds.train_x, (train - mean) / std, atol=1e-5)
    assert torch.allclose(ds.val_x, (val - mean) / std, atol=1e-5)
    assert torch.allclose(ds.test_x, (F.avg_pool2d(test_x.float() / 255, 2) - mean) / std, atol=1e-5)
    assert torch.equal(ds.train_y, train_y[100:]) and torch.equal(ds.val_y, train_y[:100])
    assert torch.equal(ds.test_y, test_y)
    assert ds.train_x.mean(0).abs().max() < 1e-5  # per-pixel mean is zero
    assert ds.image_size == 16 and ds.train_x.is_contiguous()
    raw = load_dataset(DataSpec(dataset="standin", n_train=300, n_test=50), normalize=False, verbose=False)
    assert torch.equal(raw.train_x, train_x.float()) and not raw.normalized  # raw pixel values, 0..255
    other = load_dataset(DataSpec(dataset="standin", n_train=300, n_test=50), seed=1, verbose=False)
    assert not torch.equal(other.train_x, ds.train_x)


# ------------------------------------------------------------------------ augmentation


def _padded_crops(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop of the zero-padded image, and its mirror image."""
    _, h, w = image.shape
    padded = F.pad(image, (pad, pad, pad, pad))
    crops = [padded[:, i : i + h, j : j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_augmentation_crops_are_shifted_copies_and_flips_are_mirror_images():
    x = torch.randn(64, 3, 16, 16)  # continuous values: a match is no coincidence
    out = augment_batch(x, torch.Generator().manual_seed(0))  # pad 16 / 8 = 2
    assert out.shape == x.shape and out.dtype == x.dtype
    matches = []
    for image, augmented in zip(x, out, strict=True):
        found = [k for k, crop in enumerate(_padded_crops(image, 2)) if torch.equal(crop, augmented)]
        assert len(found) == 1
        matches.append(found[0])
    offsets, flips = {m % 25 for m in matches}, [m >= 25 for m in matches]
    assert len(offsets) > 10  # offsets differ from image to image
    assert 0 < sum(flips) < len(flips)


def test_augmentation_flips_half_the_images_and_pads_with_zeros():
    x = torch.randn(1000, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(1), pad=0)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert bool((flipped ^ kept).all())  # each image is itself or its mirror, never both or neither
    # A fair coin: 1000 flips give 0.5 +- 0.016 (one sd); 0.42-0.58 is five sd.
    assert 0.42 < flipped.float().mean().item() < 0.58
    ones = augment_batch(torch.ones(200, 1, 32, 32), torch.Generator().manual_seed(2))  # default pad 4
    zeros_per_image = (ones == 0).flatten(1).sum(1)
    assert zeros_per_image.max() > 0 and torch.all((ones == 0) | (ones == 1))
    assert zeros_per_image.max() <= 32 * 32 - 28 * 28  # at most 4 rows and 4 columns are padding


def test_augmentation_is_deterministic_for_a_generator_seed():
    x = torch.randn(32, 3, 8, 8)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_augmentation_and_batches_run_with_a_cuda_generator():
    x, y = torch.randn(50, 3, 8, 8, device="cuda"), torch.arange(50, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    batches = list(iterate_batches(x, y, 16, gen, augment=True))
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == list(range(50))
    assert all(xb.device.type == "cuda" and xb.shape[1:] == (3, 8, 8) for xb, _ in batches)


# ------------------------------------------------------------------------ batches


def test_iterate_batches_visits_every_example_once():
    x, y = torch.arange(10.0)[:, None, None, None].expand(10, 1, 2, 2), torch.arange(10)
    batches = list(iterate_batches(x, y, 4, torch.Generator().manual_seed(0)))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(xb[:, 0, 0, 0], yb.float()) for xb, yb in batches)  # images stay with labels
    ordered = [yb.tolist() for _, yb in iterate_batches(x, y, 4, shuffle=False, drop_last=True)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7]]
    again = torch.cat([yb for _, yb in iterate_batches(x, y, 4, torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)


def test_the_dataset_variable_decides_what_auto_means(tmp_path, monkeypatch, capsys):
    write_cifar_folder(tmp_path)
    spec = DataSpec(dataset="auto", n_train=8, n_test=4, image_size=8)
    assert load_dataset(spec, root=tmp_path).name == "cifar10"  # on disk: auto takes it
    monkeypatch.setenv(data_mod.DATASET_ENV, "standin")
    ds = load_dataset(spec, root=tmp_path)
    assert (ds.name, ds.label) == ("standin", STANDIN_LABEL) and capsys.readouterr().out == ""
    assert load_dataset(DataSpec(dataset="cifar10", n_train=8, n_test=4), root=tmp_path).name == "cifar10"
    monkeypatch.setenv(data_mod.DATASET_ENV, "cifar10")
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError):  # asked for CIFAR-10 by name: no silent fall-back
        load_dataset(spec, root=empty)
    monkeypatch.setenv(data_mod.DATASET_ENV, "imagenet")
    with pytest.raises(ValueError, match=r"^RESNET_BOOK_DATASET='imagenet' is not a dataset; choose one of"):
        load_dataset(spec, root=tmp_path)


def test_fewer_images_than_asked_is_an_error_that_says_how_many_exist(tmp_path):
    """Issue 18, finding 3: 20 images on disk and n_train=30 gave 20 without a word."""
    write_cifar_folder(tmp_path)  # 20 training images, 6 test images
    for spec in (DataSpec(dataset="cifar10", n_train=30), DataSpec(dataset="cifar10", n_train=15, n_val=10)):
        with pytest.raises(ValueError, match=r"training images were asked for, but .* holds only 20") as err:
            load_dataset(spec, root=tmp_path, verbose=False)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"n_test=10 test images were asked for, but .* holds only 6"):
        load_dataset(DataSpec(dataset="cifar10", n_test=10), root=tmp_path, verbose=False)
    every = load_dataset(DataSpec(dataset="cifar10", n_train=None, n_val=5), root=tmp_path, verbose=False)
    assert (len(every.train_y), len(every.val_y), len(every.test_y)) == (15, 5, 6)  # None: all of them


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 100, "n_val": -3}, r"DataSpec.n_val must be a whole number >= 0, got -3"),
        ({"n_train": 2.5}, r"DataSpec.n_train must be a whole number >= 1 or None, got 2.5"),
        ({"n_test": 0}, r"DataSpec.n_test must be a whole number >= 1 or None, got 0"),
        ({"n_val": 1.0}, r"DataSpec.n_val must be a whole number >= 0"),
        ({"image_size": 16.0}, r"DataSpec.image_size must divide 32"),
        ({"image_size": True}, r"DataSpec.image_size must divide 32"),
    ],
)
def test_data_specs_are_checked_at_construction(kwargs, message):
    """Issue 18, finding 3: n_val=-3 gave n_train=3 and n_val=94; n_train=2.5 ended in a torch error."""
    with pytest.raises(ValueError, match=message) as err:
        DataSpec(**kwargs)
    assert "\n" not in str(err.value)


def test_a_fractional_width_is_refused_at_construction():
    from resnet_lib.profiles import CifarExperiment
    from resnet_lib.recipe import Recipe

    with pytest.raises(ValueError, match=r"CifarExperiment.width must be a whole number >= 1, got 2.5"):
        CifarExperiment(DataSpec(), Recipe(), width=2.5)
