"""Image data held in one tensor: CIFAR-10 through torchvision, or a procedural stand-in.

Every dataset is an :class:`ImageDataset` whose ``label`` says what it is; figures put
that label in their titles, so a stand-in is never mistaken for CIFAR-10. Augmentation
(pad + random crop + horizontal flip) runs on whole batches of tensors.

CIFAR-10's files are pickles, and unpickling runs code, so nothing is unpickled unchecked:

* Each file's bytes are checked before they are parsed: against the ``SHA256SUMS`` beside the
  folder when there is one (the shared subset has one; every file it lists must match), else
  against the official archive's MD5s (:data:`CIFAR10_MD5`). A file of 10,000 images (an
  official batch) that matches neither is damaged and refused.
* Every file, verified or not, is read with an unpickler that builds only dicts, lists, strings,
  ints and integer numpy arrays; any other global in a pickle is refused in one line. So a small
  CIFAR-format folder of one's own (the tests write them) still reads, and a pickle payload does not run.
* Then the contents: ``data`` uint8 of shape (images, 3072), one label per image, labels the ints
  0..9, ``label_names`` CIFAR-10's ten classes. Any other value is refused with the file named.

A ``cifar-10-batches-py`` folder with files missing (an interrupted extraction) is repaired by
downloading and extracting the official archive again when that is possible (never for a folder
with its own ``SHA256SUMS``, such as the subset); otherwise it is a one-line
:class:`DatasetDamagedError` naming the missing files. A damaged folder is an error even for
``dataset="auto"``: it says CIFAR-10 was meant, and falling back to the stand-in on every run
would hide the damage for good. Only a root with no CIFAR-10 folder at all falls back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import pickle
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnet_lib.profiles import DataSpec

DATASETS = ("auto", "cifar10", "standin")
DATA_ENV = "RESNET_BOOK_DATA"
#: Overrides ``dataset="auto"`` for a whole run (``make test`` runs the book once on each dataset).
DATASET_ENV = "RESNET_BOOK_DATASET"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STANDIN_CLASSES = (
    "disc", "ring", "square", "square outline", "triangle",
    "plus", "bar", "striped disc", "checkerboard", "two dots",
)  # fmt: skip
CIFAR10_LABEL = "CIFAR-10"
STANDIN_LABEL = "procedural stand-in for CIFAR-10 (not real photos)"


class DatasetNotFoundError(RuntimeError):
    """CIFAR-10 was asked for but is neither on disk nor downloadable."""


@dataclass
class ImageDataset:
    """Train / validation / test images as float tensors (N, 3, H, W), labels as int64."""

    name: str
    label: str
    classes: tuple[str, ...]
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    val_x: Tensor | None = None
    val_y: Tensor | None = None
    normalized: bool = True

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    def describe(self) -> dict:
        """What shaped this data: recorded with every result."""
        return {
            "name": self.name,
            "label": self.label,
            "n_train": len(self.train_y),
            "n_val": 0 if self.val_y is None else len(self.val_y),
            "n_test": len(self.test_y),
            "image_size": self.image_size,
            "normalized": self.normalized,
        }


def auto_dataset() -> str:
    """What ``dataset="auto"`` means in this process: ``$RESNET_BOOK_DATASET`` when set, else ``"auto"``."""
    choice = os.environ.get(DATASET_ENV) or "auto"
    if choice not in DATASETS:
        raise ValueError(f"{DATASET_ENV}={choice!r} is not a dataset; choose one of: {', '.join(DATASETS)}")
    return choice


def _absolute(path: str | Path) -> Path:
    """``path`` with ``~`` expanded, made absolute (against the working directory of now)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def default_data_root() -> Path:
    """``$RESNET_BOOK_DATA`` (``~`` expanded, made absolute), else ``~/.cache/resnet_book/data``."""
    return _absolute(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "resnet_book" / "data")


# --------------------------------------------------------------------------- CIFAR-10

#: The files of ``cifar-10-batches-py`` and their MD5 sums in the official archive (as torchvision lists them).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
#: Images per batch file of the official archive: a file this size must be the official one (its MD5).
OFFICIAL_BATCH_SIZE = 10_000
_ARCHIVE = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz")
_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
_PIXELS = 3 * 32 * 32


class DatasetDamagedError(DatasetNotFoundError):
    """A CIFAR-10 folder is there but incomplete, fails its checksums or holds something else.

    Even ``dataset="auto"`` stops here instead of falling back to the stand-in: the folder says
    the reader meant CIFAR-10, and a fall-back would hide the damage on every run.
    """


# The restricted unpickler: the only globals a CIFAR-10 batch needs, each checked before it is called.
_INT_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: str -> latin-1 bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


def _int_dtype(spec: object, align: bool = False, copy: bool = False) -> np.dtype:
    if spec not in _INT_DTYPES:
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not allowed (only integers: {sorted(_INT_DTYPES)})")
    return np.dtype(spec)


def _reconstruct(cls: object, shape: object, dtype: object) -> np.ndarray:
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"an array of class {cls!r} is not allowed, only numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.str[1:] not in _INT_DTYPES:
        raise pickle.UnpicklingError(f"numpy dtype {dtype!r} is not allowed (only integers)")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _int_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, bytes, ints and integer numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> object:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}; a CIFAR-10 batch may hold only dicts, lists, strings, ints and "
                "integer numpy arrays"
            )
        return allowed

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("it holds a persistent id; a CIFAR-10 batch has none")


def _unpickle(path: Path, raw: bytes) -> object:
    """``raw`` (the bytes of ``path``) through the restricted unpickler; one-line error otherwise."""
    try:
        return _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # UnpicklingError, EOFError, ValueError from numpy, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetDamagedError(
            f"{path} is not a CIFAR-10 batch in its python format ({type(exc).__name__}: {reason[:160]}); "
            "expected data_batch_1..5, test_batch and batches.meta as torchvision reads them"
        ) from None


def _read_sums(sums_file: Path) -> dict[str, str]:
    """``relative path -> sha256`` from a ``sha256sum``-style file."""
    sums = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise DatasetDamagedError(
                f"{sums_file}, line {number}, is not '<64 hex digits>  <file>' (as sha256sum writes): {line[:80]!r}"
            )
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def _checksum_table(root: Path, folder: Path) -> tuple[Path | None, dict[str, str]]:
    """The SHA256SUMS (in ``root`` or in the folder) that lists CIFAR-10's files: ``(file, name -> sha256)``."""
    for sums_file, prefix in ((root / "SHA256SUMS", f"{CIFAR10_FOLDER}/"), (folder / "SHA256SUMS", "")):
        if not sums_file.is_file():
            continue
        listed = _read_sums(sums_file)
        table = {name: listed[prefix + name] for name in CIFAR10_MD5 if prefix + name in listed}
        if not table:
            continue  # a SHA256SUMS about other files
        unlisted = [name for name in CIFAR10_MD5 if name not in table]
        if unlisted:
            raise DatasetDamagedError(
                f"{sums_file} lists some of CIFAR-10's files but not {', '.join(unlisted)}; "
                "it must list all seven (data_batch_1..5, test_batch, batches.meta) or none"
            )
        return sums_file, table
    return None, {}


def _verified_bytes(path: Path, sums_file: Path | None, sha256: str | None) -> tuple[bytes, bool]:
    """The bytes of ``path``, checked before anything parses them: ``(raw, matches the official MD5)``.

    A file that a SHA256SUMS lists must match it; otherwise a file is official when its MD5 is.
    """
    raw = path.read_bytes()
    if sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != sha256:
            raise DatasetDamagedError(
                f"{path} does not match {sums_file} (sha256 {actual[:16]}..., listed {sha256[:16]}...): "
                "the file is damaged or was replaced; restore it from the source of that folder"
            )
        return raw, False
    return raw, hashlib.md5(raw, usedforsecurity=False).hexdigest() == CIFAR10_MD5[path.name]


def _as_str_keys(entry: dict) -> dict:
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_batch(path: Path, raw: bytes, official: bool, vouched: bool) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's ``(data (N, 3072) uint8, labels (N,) int64)``, every field checked."""
    entry = _unpickle(path, raw)
    if not isinstance(entry, dict) or not {"data", "labels"} <= set(_as_str_keys(entry)):
        raise DatasetDamagedError(
            f"{path} does not hold a CIFAR-10 batch: expected a dict with 'data' and 'labels', "
            f"got {type(entry).__name__}"
        )
    entry = _as_str_keys(entry)
    data, labels = entry["data"], entry["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetDamagedError(
            f"{path}: 'data' is {what}; it must be a uint8 array of shape (images, 3072) "
            "(32x32 pixels, red, green, blue planes, 0..255)"
        )
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.astype(np.int64)
    elif isinstance(labels, list) and all(type(v) is int for v in labels):
        labels = np.array(labels, dtype=np.int64) if labels else np.zeros(0, dtype=np.int64)
    else:
        raise DatasetDamagedError(f"{path}: 'labels' must be a list of ints 0..9, one per image")
    if len(labels) != len(data):
        raise DatasetDamagedError(
            f"{path}: {len(labels)} labels for {len(data)} images; there must be exactly one label (0..9) per image"
        )
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise DatasetDamagedError(
            f"{path}: label {int(labels[bad[0]])} at image {int(bad[0])} ({len(bad)} labels out of range in all); "
            "CIFAR-10's labels are the ints 0..9"
        )
    if len(data) == OFFICIAL_BATCH_SIZE and not (official or vouched):
        raise DatasetDamagedError(
            f"{path} holds {OFFICIAL_BATCH_SIZE:,} images, as the official file does, but not its MD5 "
            f"({CIFAR10_MD5[path.name]}): it is damaged; delete {path.parent} to download CIFAR-10 again"
        )
    return data, labels


def _read_meta(path: Path, raw: bytes) -> None:
    entry = _unpickle(path, raw)
    names = _as_str_keys(entry).get("label_names") if isinstance(entry, dict) else None
    names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names] if isinstance(names, list) else names
    if names != list(CIFAR10_CLASSES):
        raise DatasetDamagedError(
            f"{path}: 'label_names' must be CIFAR-10's ten classes ({', '.join(CIFAR10_CLASSES)}), got {names!r:.120}"
        )


def _download_cifar10(root: Path, timeout_s: float) -> None:
    """Download the official archive into ``root`` (its MD5 checked) and extract it (the tests replace this).

    Nothing is unpickled here: the files are read like any others, by :func:`load_cifar10`.
    """
    from torchvision.datasets.utils import download_and_extract_archive

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            download_and_extract_archive(_ARCHIVE[0], str(root), filename=_ARCHIVE[1], md5=_ARCHIVE_MD5)
    finally:
        socket.setdefaulttimeout(old)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def load_cifar10(root: str | Path | None = None, download: bool = True, timeout_s: float = 20.0):
    """CIFAR-10 as uint8 tensors ``(train_x, train_y, test_x, test_y)``, NCHW.

    Reads ``root/cifar-10-batches-py`` when present, else downloads it there (when ``download``).
    Every file is checked before it is unpickled, and read with an unpickler that builds only
    plain data (see the module docstring). Raises :class:`DatasetNotFoundError` with one line
    when there is no CIFAR-10, :class:`DatasetDamagedError` when the folder is damaged.
    """
    root = _absolute(root) if root is not None else default_data_root()
    folder = root / CIFAR10_FOLDER
    missing = [name for name in CIFAR10_MD5 if not (folder / name).is_file()] if folder.exists() else None
    sums_file, sha256 = _checksum_table(root, folder) if folder.exists() else (None, {})
    if missing == []:
        pass
    elif not download:
        if missing is None:
            raise DatasetNotFoundError(
                f"CIFAR-10 is not in {folder}; put cifar-10-batches-py there or use dataset='standin'"
            )
    elif sums_file is not None:
        pass  # a folder with its own SHA256SUMS (such as the shared subset) is never overwritten by a download
    else:  # nothing there, or a half-extracted download: (re-)extract the official archive
        try:
            _download_cifar10(root, timeout_s)
        except Exception as exc:  # offline, DNS failure, HTTP error, ...
            if missing is None:
                raise DatasetNotFoundError(
                    f"CIFAR-10 is not in {folder} and could not be downloaded ({_first_line(exc)}); "
                    "put the python version (cifar-10-batches-py) there, or use dataset='standin'"
                ) from None
            raise DatasetDamagedError(
                f"CIFAR-10 in {folder} is incomplete ({', '.join(missing)} missing: a half-extracted download?) "
                f"and could not be downloaded again ({_first_line(exc)}); put the missing files there, "
                "delete the folder, or use dataset='standin'"
            ) from None
    missing = [name for name in CIFAR10_MD5 if not (folder / name).is_file()]
    if missing:
        if len(missing) == len(CIFAR10_MD5) and not any(folder.iterdir()):
            raise DatasetDamagedError(
                f"{folder} is empty; put CIFAR-10's files there (data_batch_1..5, test_batch, batches.meta), "
                "delete the folder, or use dataset='standin'"
            )
        raise DatasetDamagedError(
            f"CIFAR-10 in {folder} is incomplete: {', '.join(missing)} missing (a half-extracted download?); "
            "expected data_batch_1..5, test_batch and batches.meta"
            + ("" if sums_file is None else f", as {sums_file} lists them")
        )
    vouched = sums_file is not None

    def read(names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        rows, labels = [], []
        for name in names:
            raw, official = _verified_bytes(folder / name, sums_file, sha256.get(name))
            data, y = _read_batch(folder / name, raw, official, vouched)
            rows.append(data)
            labels.append(y)
        x = torch.from_numpy(np.concatenate(rows)).reshape(-1, 3, 32, 32)
        return x, torch.from_numpy(np.concatenate(labels))

    meta = folder / "batches.meta"
    _read_meta(meta, _verified_bytes(meta, sums_file, sha256.get("batches.meta"))[0])
    return (*read(TRAIN_FILES), *read(("test_batch",)))


# ------------------------------------------------------------------------ the stand-in


def _shape_distance(cls: int, u: Tensor, v: Tensor) -> Tensor:
    """Approximate signed distance (negative inside) of shape class ``cls`` in its own frame."""
    r = torch.sqrt(u * u + v * v)
    box = torch.maximum(u.abs(), v.abs())
    if cls == 0:  # disc
        return r - 1.0
    if cls == 1:  # ring
        return (r - 0.72).abs() - 0.2
    if cls == 2:  # filled square
        return box - 0.8
    if cls == 3:  # square outline
        return (box - 0.72).abs() - 0.16
    if cls == 4:  # triangle
        return torch.maximum(-v - 0.55, v + 1.7 * u.abs() - 0.95)
    if cls == 5:  # plus
        return torch.minimum(torch.maximum(u.abs() - 0.25, v.abs() - 0.9), torch.maximum(v.abs() - 0.25, u.abs() - 0.9))
    if cls == 6:  # bar
        return torch.maximum(u.abs() - 1.0, v.abs() - 0.22)
    if cls == 7:  # striped disc
        return torch.maximum(r - 1.0, -0.15 * torch.sin(3 * math.pi * u))
    if cls == 8:  # checkerboard
        return torch.maximum(box - 0.85, -0.2 * torch.sin(1.8 * math.pi * u) * torch.sin(1.8 * math.pi * v))
    # two dots
    return torch.minimum(torch.hypot(u - 0.55, v) - 0.33, torch.hypot(u + 0.55, v) - 0.33)


def _render_standin(labels: Tensor, gen: torch.Generator, size: int = 32) -> Tensor:
    """Render one image per label: a bright shape on a dark, smooth, noisy, cluttered ground."""
    n = len(labels)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=gen)

    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")  # (S, S) in [-1, 1]
    gx, gy = gx.expand(n, size, size), gy.expand(n, size, size)
    # Background: a dark colour with a smooth linear gradient.
    base = 0.05 + 0.25 * rand(n, 3, 1, 1)
    slope = 0.12 * (rand(n, 3, 2, 1, 1) - 0.5)
    image = base + slope[:, :, 0] * gx[:, None] + slope[:, :, 1] * gy[:, None]
    # Two thin clutter lines of a muted colour.
    for _ in range(2):
        angle = math.pi * rand(n, 1, 1)
        offset = 1.2 * (rand(n, 1, 1) - 0.5)
        dist = (gx * torch.cos(angle) + gy * torch.sin(angle) - offset).abs()
        line = torch.sigmoid((1.2 / size - dist) * size * 2)[:, None]
        image = image + line * (0.15 + 0.25 * rand(n, 3, 1, 1) - image) * 0.8
    # The shape: random position, scale, rotation and stretch; bright colour.
    cx, cy = 0.7 * (rand(n, 1, 1) - 0.5), 0.7 * (rand(n, 1, 1) - 0.5)
    scale = 0.35 + 0.25 * rand(n, 1, 1)
    stretch = 0.8 + 0.4 * rand(n, 1, 1)
    theta = 2 * math.pi * rand(n, 1, 1)
    dx, dy = gx - cx, gy - cy
    u = (dx * torch.cos(theta) + dy * torch.sin(theta)) / (scale * stretch)
    v = (-dx * torch.sin(theta) + dy * torch.cos(theta)) * stretch / scale
    distance = torch.empty(n, size, size)
    for c in range(len(STANDIN_CLASSES)):
        idx = (labels == c).nonzero(as_tuple=True)[0]
        if len(idx):
            distance[idx] = _shape_distance(c, u[idx], v[idx])
    mask = torch.sigmoid(-distance * scale * size)[:, None]
    colour = 0.55 + 0.45 * rand(n, 3, 1, 1)
    image = image * (1 - mask) + colour * mask
    image = image + 0.04 * torch.randn(n, 3, size, size, generator=gen)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def make_standin(n_train: int, n_test: int, seed: int = 0, chunk: int = 2000):
    """The procedural stand-in as uint8 tensors ``(train_x, train_y, test_x, test_y)`` at 32x32.

    Deterministic for a seed; classes are balanced and shuffled.
    """
    out = []
    for split, n in ((0, n_train), (1, n_test)):
        gen = torch.Generator().manual_seed(1_000_003 * seed + split)
        labels = torch.arange(n) % len(STANDIN_CLASSES)
        labels = labels[torch.randperm(n, generator=gen)]
        images = [_render_standin(labels[i : i + chunk], gen) for i in range(0, n, chunk)]
        out += [torch.cat(images) if images else torch.empty(0, 3, 32, 32, dtype=torch.uint8), labels]
    return tuple(out)


# ------------------------------------------------------------------------ the front door


_IMAGE_SIZES = (32, 16, 8, 4, 2, 1)


def _check_image_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size not in _IMAGE_SIZES:
        raise ValueError(f"image_size must divide 32 (32, 16, 8, ...), got {size!r}")


def _resize(x: Tensor, size: int) -> Tensor:
    _check_image_size(size)
    if x.shape[-1] == size:
        return x
    return F.avg_pool2d(x, x.shape[-1] // size)


def _check_enough(spec: DataSpec, n_train_there: int, n_test_there: int, root: Path) -> None:
    """A one-line ``ValueError`` when ``spec`` asks for more images than the folder holds."""
    if spec.n_train is not None and n_train_there < spec.n_train + spec.n_val:
        raise ValueError(
            f"n_train={spec.n_train} + n_val={spec.n_val} training images were asked for, but {root} holds "
            f"only {n_train_there}; ask for fewer (n_train=None: all of them)"
        )
    if spec.n_test is not None and n_test_there < spec.n_test:
        raise ValueError(
            f"n_test={spec.n_test} test images were asked for, but {root} holds only {n_test_there}; "
            "ask for fewer (n_test=None: all of them)"
        )


def load_dataset(
    spec: DataSpec | None = None,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    normalize: bool = True,
    verbose: bool = True,
) -> ImageDataset:
    """The images a :class:`DataSpec` describes, as one :class:`ImageDataset`.

    ``dataset="auto"`` uses CIFAR-10 when it is on disk or can be downloaded, else prints
    one line and uses the stand-in (a damaged CIFAR-10 folder raises :class:`DatasetDamagedError`
    instead); ``$RESNET_BOOK_DATASET`` (``cifar10`` or ``standin``)
    decides for it instead. Images are scaled to [0, 1], averaged down to
    ``image_size``, and (``normalize``) have the per-pixel training mean subtracted and
    are divided by the training set's overall standard deviation; with ``normalize=False``
    they are left as raw pixel values in [0, 255] (floats). ``n_train``/``n_test`` of
    ``None`` mean all images (the stand-in then makes 50,000 + 10,000).
    """
    spec = spec or DataSpec()
    if spec.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {spec.dataset!r}; choose one of: {', '.join(DATASETS)}")
    _check_image_size(spec.image_size)  # before minutes of loading or generating, not after
    for field, value in (("n_train", spec.n_train), ("n_test", spec.n_test)):
        if value is not None and value < 1:
            raise ValueError(f"{field} must be None (all images) or >= 1, got {value}")
    requested = auto_dataset() if spec.dataset == "auto" else spec.dataset
    name = requested
    if name in ("auto", "cifar10"):
        try:
            tx, ty, vx, vy = load_cifar10(root, download=True)
            name = "cifar10"
        except DatasetNotFoundError as exc:
            if requested == "cifar10" or isinstance(exc, DatasetDamagedError):  # damage is never hidden
                raise
            if verbose:
                print(f"CIFAR-10 unavailable, using the {STANDIN_LABEL}: {str(exc).split(';')[0]}")
            name = "standin"
    n_train_all = (50_000 if spec.n_train is None else spec.n_train) + spec.n_val
    if name == "cifar10":  # fewer images than asked for is an error, never a silent cut
        _check_enough(spec, len(ty), len(vy), Path(root) if root is not None else default_data_root())
    if name == "standin":
        tx, ty, vx, vy = make_standin(n_train_all, 10_000 if spec.n_test is None else spec.n_test, seed=seed)
    # First n_val images of the training set are held out (CIFAR-10's order is already random).
    train_x, train_y = tx[:n_train_all].float() / 255, ty[:n_train_all]
    test_x, test_y = vx[: spec.n_test].float() / 255, vy[: spec.n_test]
    train_x, test_x = _resize(train_x, spec.image_size), _resize(test_x, spec.image_size)
    val_x = val_y = None
    if spec.n_val:
        if spec.n_val >= len(train_y):
            raise ValueError(f"n_val={spec.n_val} leaves no training images (only {len(train_y)} available)")
        val_x, val_y = train_x[: spec.n_val], train_y[: spec.n_val]
        train_x, train_y = train_x[spec.n_val :], train_y[spec.n_val :]
    if normalize:
        mean, std = train_x.mean(dim=0, keepdim=True), train_x.std()
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        val_x = None if val_x is None else (val_x - mean) / std
    else:
        train_x, test_x = train_x * 255, test_x * 255  # raw pixel values, for chapter 2
        val_x = None if val_x is None else val_x * 255
    cifar = name == "cifar10"
    return ImageDataset(
        name=name,
        label=CIFAR10_LABEL if cifar else STANDIN_LABEL,
        classes=CIFAR10_CLASSES if cifar else STANDIN_CLASSES,
        train_x=train_x.contiguous(),
        train_y=train_y.contiguous(),
        test_x=test_x.contiguous(),
        test_y=test_y.contiguous(),
        val_x=val_x,
        val_y=val_y,
        normalized=normalize,
    )


# ------------------------------------------------------------------------ batches


def augment_batch(x: Tensor, gen: torch.Generator, pad: int | None = None) -> Tensor:
    """Pad by ``pad`` pixels (default: image size / 8, i.e. 4 at 32x32), crop back at a
    random offset per image, and flip half of the images horizontally; all batched."""
    b, c, h, w = x.shape
    pad = max(h // 8, 1) if pad is None else pad
    padded = F.pad(x, (pad, pad, pad, pad))
    # Random numbers are drawn where the generator lives (a CUDA generator cannot fill a CPU
    # tensor), then moved to the images; on the CPU this is the same stream as ever.
    rng = gen.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=rng).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=rng).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    flip = (torch.rand(b, generator=gen, device=rng) < 0.5).to(x.device)
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows, cols]


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    gen: torch.Generator | None = None,
    augment: bool = False,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of a tensor dataset: shuffled with ``gen``, optionally augmented."""
    n = len(y)
    rng = gen.device if gen is not None else torch.device("cpu")  # draw where the generator lives
    order = (torch.randperm(n, generator=gen, device=rng) if shuffle else torch.arange(n)).to(x.device)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        xb = x[idx]
        if augment:
            xb = augment_batch(xb, gen)
        yield xb, y[idx]
