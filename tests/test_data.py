"""Data: the CIFAR-10 reader, the procedural stand-in, normalization, batched augmentation, batches."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
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
    TRAIN_FILES,
    DatasetDamagedError,
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
    if how == "not pickles":
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
    elif how == "other class names":
        meta = {"label_names": ["cat"] * 10}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("empty", r"is incomplete \(data_batch_1, .*batches.meta missing"),
        ("not pickles", r"batches.meta is not a CIFAR-10 batch in its python format"),
        ("pickled lists", r"batches.meta: 'label_names' must be CIFAR-10's ten classes"),
        ("wrong image size", r"data_batch_3: 'data' is uint8 \(4, 100\); it must be a uint8 array of shape"),
        ("truncated", r"data_batch_2 is not a CIFAR-10 batch in its python format \(\w+Error"),
        ("other class names", r"batches.meta: 'label_names' must be CIFAR-10's ten classes \(airplane, "),
    ],
)
def test_a_folder_that_does_not_hold_cifar10_gets_one_clear_error(tmp_path, how, message):
    if how == "empty":
        (tmp_path / "cifar-10-batches-py").mkdir()
    else:
        write_cifar_folder(tmp_path)
    _garble(tmp_path / "cifar-10-batches-py", how)
    for dataset in ("cifar10", "auto"):  # a damaged folder is an error for auto too, never a silent stand-in
        with pytest.raises(DatasetDamagedError, match=message) as err:
            load_dataset(DataSpec(dataset=dataset), root=tmp_path)
        assert "\n" not in str(err.value)


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


# ------------------------------------------------- issue 31: nothing unverified is loaded

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


class _Payload:
    """Unpickling this creates ``marker``: the stand-in for code a pickle runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _rewrite(folder: Path, name: str, **fields) -> None:
    """Replace fields of one batch file of a folder that :func:`write_cifar_folder` wrote."""
    entry = pickle.loads((folder / name).read_bytes())
    entry.update(fields)
    (folder / name).write_bytes(pickle.dumps(entry, protocol=2))


def _write_sums(root: Path) -> Path:
    """A SHA256SUMS beside ``cifar-10-batches-py``, as the shared subset has."""
    folder = root / "cifar-10-batches-py"
    lines = [
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  cifar-10-batches-py/{f.name}" for f in sorted(folder.iterdir())
    ]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root / "SHA256SUMS"


def _flip_a_byte(path: Path, where: int = -3000) -> None:
    raw = bytearray(path.read_bytes())
    raw[where] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("batches.meta", lambda marker: {"label_names": list(CIFAR10_CLASSES), "x": _Payload(marker)}),
        ("data_batch_3", lambda marker: {"data": _pixels(4, 3), "labels": [0, 1, 2, 3], "x": _Payload(marker)}),
        ("test_batch", lambda marker: {"data": np.array([_Payload(marker)], dtype=object), "labels": [0]}),
    ],
)
def test_row2_a_pickle_payload_in_a_batch_never_runs(tmp_path, name, payload):
    """Issue 31, row 2: a payload in batches.meta or a data batch ran; every file is now read by a restricted
    unpickler (and, where a SHA256SUMS lists it, checked before it is parsed)."""
    write_cifar_folder(tmp_path)
    marker = tmp_path / "payload-ran"
    folder = tmp_path / "cifar-10-batches-py"
    (folder / name).write_bytes(pickle.dumps(payload(marker), protocol=2))
    for dataset in ("cifar10", "auto"):
        with pytest.raises(DatasetDamagedError, match=rf"{name} is not a CIFAR-10 batch .*(io\.open|dtype 'O8')"):
            load_dataset(DataSpec(dataset=dataset), root=tmp_path)
    assert not marker.exists(), "the pickle's payload ran"
    # A folder with a SHA256SUMS written before the payload: refused before the file is parsed at all.
    clean = tmp_path / "with_sums"
    write_cifar_folder(clean)
    _write_sums(clean)
    (clean / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(payload(marker), protocol=2))
    with pytest.raises(DatasetDamagedError, match=rf"{name} does not match .*SHA256SUMS \(sha256 [0-9a-f]+\.\.\.") as e:
        load_cifar10(clean, download=False)
    assert "\n" not in str(e.value) and not marker.exists()


def test_row2_the_restricted_unpickler_reads_every_pickle_protocol_and_py2_strings(tmp_path):
    """What the format needs still reads: protocols 2 to 5, and byte-string keys as Python 2 wrote them."""
    train_rows, train_labels, _, _ = write_cifar_folder(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    for protocol, name in zip((2, 3, 4, 5), TRAIN_FILES[:4], strict=True):
        entry = pickle.loads((folder / name).read_bytes())
        entry = {key.encode(): value for key, value in entry.items()} if protocol == 3 else entry
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    tx, ty, _, _ = load_cifar10(tmp_path, download=False)
    assert torch.equal(tx, torch.from_numpy(train_rows).reshape(-1, 3, 32, 32)) and ty.tolist() == train_labels


@pytest.mark.parametrize(
    ("name", "labels", "message"),
    [
        (
            "data_batch_2",
            [0, 10, 1, 2],
            r"data_batch_2: label 10 at image 1 \(1 labels out of range in all\); .*0\.\.9",
        ),
        ("data_batch_5", [-1, 3, 3, 3], r"data_batch_5: label -1 at image 0 .*CIFAR-10's labels are the ints 0\.\.9"),
        ("test_batch", [0, 1, 255, 3, 4, 5], r"test_batch: label 255 at image 2 "),
        ("data_batch_1", [0, 1, 2.0, 3], r"data_batch_1: 'labels' must be a list of ints 0\.\.9, one per image"),
        ("data_batch_1", [0, 1, True, 3], r"data_batch_1: 'labels' must be a list of ints 0\.\.9, one per image"),
    ],
)
def test_row3_labels_outside_0_to_9_are_refused_at_load(tmp_path, name, labels, message):
    """Issue 31, row 3: training label 10 or -1, test label 255 gave IndexError tracebacks (one after an epoch)."""
    write_cifar_folder(tmp_path)
    _rewrite(tmp_path / "cifar-10-batches-py", name, labels=labels)
    with pytest.raises(DatasetDamagedError, match=message) as err:
        load_dataset(DataSpec(dataset="auto"), root=tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("how", ["one label missing", "one label too many", "labels of another length as an array"])
def test_row4_a_label_count_that_is_not_one_per_image_is_refused(tmp_path, how):
    """Issue 31, row 4: 100 labels missing from data_batch_1 loaded, and every later label was shifted."""
    write_cifar_folder(tmp_path)
    labels = {
        "one label missing": [1, 2, 3],
        "one label too many": [1, 2, 3, 4, 5],
        "labels of another length as an array": np.array([1, 2], dtype=np.int64),
    }[how]
    _rewrite(tmp_path / "cifar-10-batches-py", "data_batch_1", labels=labels)
    n = len(labels)
    with pytest.raises(DatasetDamagedError, match=rf"data_batch_1: {n} labels for 4 images; .*exactly one label"):
        load_dataset(DataSpec(dataset="cifar10"), root=tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.full((4, 3072), 1020, dtype=np.int16), r"'data' is int16 \(4, 3072\); it must be a uint8 array"),
        (np.zeros((4, 3, 32, 32), dtype=np.uint8), r"'data' is uint8 \(4, 3, 32, 32\); it must be a uint8 array"),
        (np.zeros((4, 3072), dtype=np.float32), r"numpy dtype 'f4' is not allowed"),
        ([[0] * 3072] * 4, r"'data' is list; it must be a uint8 array of shape \(images, 3072\)"),
    ],
)
def test_row5_pixels_that_are_not_uint8_rows_of_3072_are_refused(tmp_path, data, message):
    """Issue 31, row 5: int16 pixels up to 1020 loaded silently."""
    write_cifar_folder(tmp_path)
    _rewrite(tmp_path / "cifar-10-batches-py", "data_batch_4", data=data)
    with pytest.raises(DatasetDamagedError, match=message) as err:
        load_dataset(DataSpec(dataset="auto"), root=tmp_path)
    assert "data_batch_4" in str(err.value) and "\n" not in str(err.value)


def test_row5_a_flipped_byte_is_caught_by_the_folders_sha256sums(tmp_path):
    """Issue 31, row 5: one flipped byte loaded silently; a folder with a SHA256SUMS is now checked against it."""
    write_cifar_folder(tmp_path)
    sums = _write_sums(tmp_path)
    assert load_cifar10(tmp_path, download=False)[0].shape == (20, 3, 32, 32)  # intact: it reads
    _flip_a_byte(tmp_path / "cifar-10-batches-py" / "data_batch_3")  # a pixel: the pickle still parses
    with pytest.raises(DatasetDamagedError, match=r"data_batch_3 does not match .*SHA256SUMS") as err:
        load_dataset(DataSpec(dataset="auto"), root=tmp_path)
    assert "\n" not in str(err.value)
    # A SHA256SUMS that lists some of the files must list all of them.
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "test_batch" not in line))
    with pytest.raises(DatasetDamagedError, match=r"SHA256SUMS lists some of CIFAR-10's files but not test_batch"):
        load_cifar10(tmp_path, download=False)
    sums.write_text("not a checksum  cifar-10-batches-py/data_batch_1\n")
    with pytest.raises(DatasetDamagedError, match=r"SHA256SUMS, line 1, is not '<64 hex digits>  <file>'"):
        load_cifar10(tmp_path, download=False)


def test_row5_a_flipped_byte_in_an_official_batch_is_caught_by_its_md5(tmp_path, monkeypatch):
    """Issue 31, rows 2 and 5: CI's cached download was never verified. Played with tiny files made official by
    patching the MD5 table and the official batch size: the intact ones read, a flipped byte is refused."""
    write_cifar_folder(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    md5s = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", md5s)
    monkeypatch.setattr(data_mod, "OFFICIAL_BATCH_SIZE", TRAIN_PER_BATCH)
    assert load_cifar10(tmp_path, download=False)[0].shape == (20, 3, 32, 32)
    _flip_a_byte(folder / "data_batch_5")
    with pytest.raises(DatasetDamagedError, match=r"data_batch_5 holds 4 images, as the official file does, but not"):
        load_dataset(DataSpec(dataset="auto"), root=tmp_path)


@pytest.mark.skipif(
    not (SUBSET / "SHA256SUMS").is_file(), reason="the shared CIFAR-10 subset is not beside this checkout"
)
def test_rows2_5_the_shared_subset_is_verified_against_its_sha256sums(tmp_path):
    tx, ty, vx, _ = load_cifar10(SUBSET, download=False)
    assert tx.shape == (4660, 3, 32, 32) and vx.shape == (846, 3, 32, 32) and int(ty.max()) == 9
    copy = tmp_path / "subset"
    shutil.copytree(SUBSET, copy)
    for f in copy.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    _flip_a_byte(copy / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DatasetDamagedError, match=r"test_batch does not match .*subset/SHA256SUMS"):
        load_cifar10(copy, download=False)


def test_row6_a_half_extracted_folder_is_repaired_when_online(tmp_path, monkeypatch):
    """Issue 31, row 6: a half-extracted cifar-10-batches-py made auto use the stand-in on every run."""
    write_cifar_folder(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    for name in ("data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).unlink()
    downloads = []

    def download(root, timeout_s):  # the archive extracted again over the folder
        downloads.append(root)
        shutil.rmtree(root / "cifar-10-batches-py")
        write_cifar_folder(root)

    monkeypatch.setattr(data_mod, "_download_cifar10", download)
    ds = load_dataset(DataSpec(dataset="auto"), root=tmp_path, verbose=False)
    assert ds.name == "cifar10" and len(ds.train_y) == 5 * TRAIN_PER_BATCH and downloads == [tmp_path]


def test_row6_a_half_extracted_folder_offline_is_one_clear_error_not_the_standin(tmp_path, capsys):
    write_cifar_folder(tmp_path)
    for name in ("data_batch_4", "test_batch"):
        (tmp_path / "cifar-10-batches-py" / name).unlink()
    for dataset in ("auto", "cifar10"):
        with pytest.raises(
            DatasetDamagedError, match=r"is incomplete \(data_batch_4, test_batch missing: a half-"
        ) as e:
            load_dataset(DataSpec(dataset=dataset), root=tmp_path)
        assert "could not be downloaded again (network disabled in tests)" in str(e.value) and "\n" not in str(e.value)
    assert capsys.readouterr().out == ""  # no "using the stand-in" line: it did not fall back
    with pytest.raises(DatasetDamagedError, match=r"is incomplete: data_batch_4, test_batch missing"):
        load_cifar10(tmp_path, download=False)


def test_row6_a_folder_with_its_own_sha256sums_is_never_overwritten_by_a_download(tmp_path, monkeypatch):
    write_cifar_folder(tmp_path)
    _write_sums(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").unlink()
    monkeypatch.setattr(data_mod, "_download_cifar10", lambda root, timeout_s: pytest.fail("it downloaded"))
    with pytest.raises(DatasetDamagedError, match=r"incomplete: data_batch_2 missing .*as .*SHA256SUMS lists them"):
        load_dataset(DataSpec(dataset="auto"), root=tmp_path)


def test_row16_the_data_folder_variable_expands_a_tilde_and_is_made_absolute(tmp_path, monkeypatch):
    """Issue 31, row 16: RESNET_BOOK_DATA='~/x' was a literal './~/x', and a relative path followed the cwd."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(data_mod.DATA_ENV, "~/x")
    assert data_mod.default_data_root() == tmp_path / "home" / "x"
    write_cifar_folder(tmp_path / "home" / "x")
    assert load_dataset(DataSpec(dataset="cifar10")).name == "cifar10"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(data_mod.DATA_ENV, "rel/data")
    root = data_mod.default_data_root()
    assert root.is_absolute() and root == tmp_path / "rel" / "data"
    monkeypatch.chdir(tmp_path / "home")
    assert data_mod.default_data_root() == tmp_path / "home" / "rel" / "data"  # absolute when asked
    assert load_cifar10("~/x", download=False)[0].shape == (20, 3, 32, 32)  # an explicit root too
    assert not (tmp_path / "home" / "~").exists()


def test_row16_the_makefile_finds_the_shared_folders_under_a_path_with_a_space(tmp_path):
    """Issue 31, row 16: under a checkout path with a space, the Makefile silently missed the shared subset."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    top = tmp_path / "a checkout with spaces"
    (top / "main").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "Makefile", top / "main" / "Makefile")
    subset = top / "shared" / "data" / "cifar10-subset" / "cifar-10-batches-py"
    subset.mkdir(parents=True)
    (subset / "data_batch_1").write_bytes(b"")
    weights = top / "shared" / "weights" / "akamaster-cifar10-resnets"
    weights.mkdir(parents=True)
    (weights / "SHA256SUMS").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("RESNET_BOOK_DATA", "RESNET_BOOK_WEIGHTS", "MAKEFLAGS")}
    show = 'show-paths: ; @printf "%s|%s\\n" "$${RESNET_BOOK_DATA-}" "$${RESNET_BOOK_WEIGHTS-}"'
    out = subprocess.run(
        [make, "-s", "--no-print-directory", "--eval", show, "show-paths"],
        cwd=top / "main",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == f"{subset.parent}|{weights}"
    (subset / "data_batch_1").unlink()  # no subset there: RESNET_BOOK_DATA is left to resnet_lib's default
    out = subprocess.run([make, "-s", "--eval", show, "show-paths"], cwd=top / "main", env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == f"|{weights}"
