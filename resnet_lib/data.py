"""Image data held in one tensor: CIFAR-10 through torchvision, or a procedural stand-in.

Every dataset is an :class:`ImageDataset` whose ``label`` says what it is; figures put
that label in their titles, so a stand-in is never mistaken for CIFAR-10. Augmentation
(pad + random crop + horizontal flip) runs on whole batches of tensors.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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


def default_data_root() -> Path:
    """``$RESNET_BOOK_DATA``, else ``~/.cache/resnet_book/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "resnet_book" / "data")


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_class():
    from torchvision.datasets import CIFAR10

    class LocalCIFAR10(CIFAR10):
        """torchvision's reader, checking that the files exist and parse rather than their MD5
        (so a small CIFAR-format folder, like the one the tests write, reads too)."""

        meta: ClassVar[dict] = {**CIFAR10.meta, "md5": None}  # _load_meta would check its MD5: skip that too

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    return LocalCIFAR10


def _download_cifar10(root: Path, timeout_s: float) -> None:
    """Download and extract CIFAR-10 into ``root`` with torchvision, quietly (the tests replace this)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _cifar_class()(str(root), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)


def load_cifar10(root: str | Path | None = None, download: bool = True, timeout_s: float = 20.0):
    """CIFAR-10 as uint8 tensors ``(train_x, train_y, test_x, test_y)``, NCHW.

    Reads ``root/cifar-10-batches-py`` when present, else downloads it there (when
    ``download``). Raises :class:`DatasetNotFoundError` with one line when neither works.
    """
    root = Path(root) if root is not None else default_data_root()
    cls = _cifar_class()
    folder = root / cls.base_folder
    if not folder.exists() and download:
        try:
            _download_cifar10(root, timeout_s)
        except Exception as exc:  # offline, DNS failure, HTTP error, ...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DatasetNotFoundError(
                f"CIFAR-10 is not in {folder} and could not be downloaded ({reason[:120]}); "
                "put the python version (cifar-10-batches-py) there, or use dataset='standin'"
            ) from None
    if not folder.exists():
        raise DatasetNotFoundError(
            f"CIFAR-10 is not in {folder}; put cifar-10-batches-py there or use dataset='standin'"
        )
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except Exception as exc:  # missing files, not pickles, pickles of the wrong thing, wrong sizes, ...
        raise DatasetNotFoundError(
            f"{folder} does not hold CIFAR-10 in its python format ({type(exc).__name__}: {str(exc)[:100]}); "
            "expected data_batch_1..5, test_batch and batches.meta"
        ) from None

    def to_tensors(ds) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    return (*to_tensors(train), *to_tensors(test))


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
    one line and uses the stand-in; ``$RESNET_BOOK_DATASET`` (``cifar10`` or ``standin``)
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
            if requested == "cifar10":
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
