"""Published CIFAR-10 ResNets trained to convergence: a registry, verified files, a loader.

He et al. (2016) report Table 6 for nets trained for 64k iterations on all of CIFAR-10, which
takes days on a CPU. Yerlan Idelbayev published ResNet-20/32/44/56 trained with the paper's
recipe (SGD, batch 128, lr 0.1 divided by 10 at epochs 100 and 150 of 200, momentum 0.9,
weight decay 1e-4, pad-crop-flip) in ``akamaster/pytorch_resnet_cifar10`` (BSD-2-Clause; the
notice is :data:`NOTICE`). This module knows those files and loads them into the book's own
:class:`~resnet_lib.models.cifar.CifarNet`.

Where a file is looked for, first found first (:func:`weights_folders`):

1. ``$RESNET_BOOK_WEIGHTS``;
2. the shared folder beside a checkout of the book (``../shared/weights/akamaster-cifar10-resnets``);
3. the reader's cache ``~/.cache/resnet_book/weights``, downloaded there from the URL pinned to the
   publisher's commit when the machine is online.

A file is read as bytes and its SHA-256 compared with the registry's *before* anything is
unpickled, and then only by ``torch.load(..., weights_only=True)``. A file that differs is
refused in one line (:class:`WeightsChecksumError`); no copy anywhere is one line too
(:class:`WeightsUnavailableError`).

What a loader must know (measured on the files): inputs are RGB in [0, 1] normalized per
channel by :data:`MEAN` and :data:`STD` (:func:`prepare_images`), and option A pads its zero
channels half before and half after the existing ones (``CifarNet(zero_padding="split")``);
with the zeros appended instead the logits differ by about 10-30.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from resnet_lib.data import ImageDataset, load_dataset
from resnet_lib.models.cifar import CifarNet
from resnet_lib.profiles import DataSpec

WEIGHTS_ENV = "RESNET_BOOK_WEIGHTS"
REPOSITORY = "akamaster/pytorch_resnet_cifar10"
COMMIT = "d1ea1080238e82429bcb41792ca5f1e1dd0296ad"
LICENCE = "BSD-2-Clause"
NOTICE = "Copyright (c) 2018, Yerlan Idelbayev (BSD-2-Clause): github.com/akamaster/pytorch_resnet_cifar10"
#: Per-channel mean and standard deviation of the inputs, on RGB in [0, 1] (the publisher's transform).
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The subfolder of a checkout's shared folder, and of the reader's cache, that holds the files.
FOLDER_NAME = "akamaster-cifar10-resnets"
_CHECKOUT_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "weights" / FOLDER_NAME


class WeightsUnavailableError(RuntimeError):
    """No verified copy of a published file here, and none could be downloaded."""


class WeightsChecksumError(ValueError):
    """A file whose SHA-256 is not the registry's: refused before it is unpickled."""


@dataclass(frozen=True)
class PublishedNet:
    """One published file: which net, its full SHA-256, and the errors stated for it."""

    depth: int
    file: str
    sha256: str
    #: Test error (%) on CIFAR-10's 10,000 test photos, as the publisher states it (best epoch on the test set).
    stated_error: float
    #: He et al. (2016), Table 6 (%).
    paper_error: float

    @property
    def label(self) -> str:
        return f"ResNet-{self.depth}"

    @property
    def url(self) -> str:
        """The file at the publisher's pinned commit."""
        return f"https://github.com/{REPOSITORY}/raw/{COMMIT}/pretrained_models/{self.file}"


#: depth -> the published ResNet of that depth.
PUBLISHED: dict[int, PublishedNet] = {
    net.depth: net
    for net in (
        PublishedNet(20, "resnet20-12fca82f.th",
                     "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 8.27, 8.75),
        PublishedNet(32, "resnet32-d509ac18.th",
                     "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 7.37, 7.51),
        PublishedNet(44, "resnet44-014dd654.th",
                     "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 6.90, 7.17),
        PublishedNet(56, "resnet56-4bfd9763.th",
                     "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 6.61, 6.97),
    )
}  # fmt: skip


def published_net(depth: int) -> PublishedNet:
    """The registry entry for ResNet-``depth``; a one-line ``ValueError`` for a depth nobody published here."""
    if isinstance(depth, bool) or depth not in PUBLISHED:
        raise ValueError(f"no published weights for depth {depth!r}; choose one of: {', '.join(map(str, PUBLISHED))}")
    return PUBLISHED[depth]


def cache_folder() -> Path:
    """Where downloaded files are kept: ``~/.cache/resnet_book/weights/<FOLDER_NAME>``."""
    return Path.home() / ".cache" / "resnet_book" / "weights" / FOLDER_NAME


def weights_folders() -> list[Path]:
    """The folders searched, in order: ``$RESNET_BOOK_WEIGHTS``, the checkout's shared folder, the cache."""
    folders = []
    if os.environ.get(WEIGHTS_ENV):
        folders.append(Path(os.environ[WEIGHTS_ENV]).expanduser().absolute())
    folders += [_CHECKOUT_SHARED, cache_folder()]
    return folders


def verified_bytes(path: Path, net: PublishedNet) -> bytes:
    """The bytes of ``path`` if their SHA-256 is ``net``'s, else a one-line :class:`WeightsChecksumError`."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != net.sha256:
        raise WeightsChecksumError(
            f"{path} is not the published {net.label} file: SHA-256 {digest[:16]}..., expected {net.sha256[:16]}...; "
            f"delete it, or point {WEIGHTS_ENV} at a folder with the published files"
        )
    return data


def _download(url: str, timeout_s: float) -> bytes:
    """The body at ``url`` (the tests replace this)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # a pinned https URL
        return response.read()


def _download_verified(net: PublishedNet, timeout_s: float) -> Path:
    """Download ``net``'s file into the cache, verify it in memory, then write it there atomically."""
    try:
        data = _download(net.url, timeout_s)
    except Exception as exc:  # offline, DNS, HTTP error, time-out, ...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise WeightsUnavailableError(
            f"the published {net.label} weights are not in {', '.join(map(str, weights_folders()))} and could not "
            f"be downloaded ({reason}); put {net.file} in {WEIGHTS_ENV}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != net.sha256:
        raise WeightsChecksumError(
            f"the download of {net.url} is not the published {net.label} file (SHA-256 {digest[:16]}..., "
            f"expected {net.sha256[:16]}...); nothing was kept"
        )
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / net.file
    temporary = folder / f".{net.file}.{os.getpid()}.part"
    temporary.write_bytes(data)
    os.replace(temporary, target)
    return target


def weights_file(depth: int, download: bool = True, timeout_s: float = 20.0) -> Path:
    """The first verified copy of ResNet-``depth``'s published file (downloading it when needed and allowed).

    A copy whose checksum differs is never used: it raises :class:`WeightsChecksumError`, so a
    damaged or replaced file is noticed rather than passed over for another.
    """
    net = published_net(depth)
    for folder in weights_folders():
        path = folder / net.file
        if path.is_file():
            verified_bytes(path, net)
            return path
    if not download:
        raise WeightsUnavailableError(
            f"the published {net.label} weights ({net.file}) are in none of {', '.join(map(str, weights_folders()))}; "
            f"set {WEIGHTS_ENV} to a folder that holds them, or allow the download"
        )
    return _download_verified(net, timeout_s)


def _our_key(key: str) -> str:
    """The publisher's state-dict key as :class:`CifarNet` names it."""
    key = key.removeprefix("module.")
    for theirs, ours in (("conv1.", "stem.0."), ("bn1.", "stem.1."), ("linear.", "fc.")):
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return key.replace("layer", "stage", 1) if key.startswith("layer") else key


def published_state_dict(depth: int, download: bool = True) -> dict[str, Tensor]:
    """ResNet-``depth``'s published weights, verified, keyed as :class:`CifarNet` names its parameters."""
    net = published_net(depth)
    path = weights_file(depth, download=download)
    data = verified_bytes(path, net)  # read once more: what is unpickled is exactly what was checked
    stored = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(stored, dict) or not isinstance(stored.get("state_dict"), dict):
        raise WeightsChecksumError(f"{path} holds no 'state_dict'")  # unreachable for a file that verified
    return {_our_key(k): v for k, v in stored["state_dict"].items()}


def load_published(depth: int, download: bool = True) -> CifarNet:
    """ResNet-``depth`` of He et al. trained to convergence, as a :class:`CifarNet` in eval mode.

    Option A with its zeros split around the channels, as the publisher trained it; the inputs
    must be prepared by :func:`prepare_images`.
    """
    model = CifarNet(depth, residual=True, shortcut="A", zero_padding="split")
    state = published_state_dict(depth, download=download)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsChecksumError(
            f"ResNet-{depth}'s file does not fit CifarNet: missing {missing}, extra {unexpected}"
        )
    return model.eval()


def prepare_images(x: Tensor) -> Tensor:
    """Images with pixel values in [0, 1], shape (N, 3, 32, 32), normalized as the published nets expect."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (32, 32):
        raise ValueError(f"the published nets take (N, 3, 32, 32) images, got shape {tuple(x.shape)}")
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def published_photos(
    dataset: str = "auto", n_train: int | None = 4500, n_test: int | None = None, verbose: bool = True
) -> ImageDataset:
    """Training and test photos at 32x32, prepared by :func:`prepare_images` for the published nets.

    ``dataset`` as for :func:`~resnet_lib.data.load_dataset` (on the stand-in the nets see images
    unlike any they were trained on); ``n_train`` / ``n_test``: the first that many (``None``: all).
    """
    raw = load_dataset(
        DataSpec(dataset=dataset, n_train=n_train, n_test=n_test, image_size=32), normalize=False, verbose=verbose
    )
    raw.train_x, raw.test_x = prepare_images(raw.train_x / 255), prepare_images(raw.test_x / 255)
    raw.normalized = True
    return raw


def load_available(depths: tuple[int, ...], download: bool = True) -> tuple[dict[int, CifarNet], dict[int, str]]:
    """The published nets of ``depths`` that can be had here, and for the others one line saying why not.

    A chapter shows what the loaded nets show and prints, for each missing one, what it could not show.
    """
    nets, missing = {}, {}
    for depth in depths:
        try:
            nets[depth] = load_published(depth, download=download)
        except (WeightsUnavailableError, WeightsChecksumError) as exc:
            missing[depth] = str(exc)
    return nets, missing


__all__ = [
    "COMMIT",
    "LICENCE",
    "MEAN",
    "NOTICE",
    "PUBLISHED",
    "REPOSITORY",
    "STD",
    "WEIGHTS_ENV",
    "PublishedNet",
    "WeightsChecksumError",
    "WeightsUnavailableError",
    "cache_folder",
    "load_available",
    "load_published",
    "prepare_images",
    "published_net",
    "published_photos",
    "published_state_dict",
    "verified_bytes",
    "weights_file",
    "weights_folders",
]
