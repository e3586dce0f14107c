"""The published CIFAR-10 ResNets: verified before unpickling, loaded into CifarNet as the same function.

The loaded net's logits are recomputed from the raw state dict by a forward pass written here with
``torch.nn.functional`` only, so a wrong key mapping, a wrong zero-channel placement or a wrong
normalization in the library shows up as a logit difference.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resnet_lib.models import CifarNet
from resnet_lib.models import published as pub

SHARED = Path(__file__).resolve().parents[2] / "shared" / "weights" / pub.FOLDER_NAME
needs_files = pytest.mark.skipif(
    not any((folder / pub.PUBLISHED[20].file).is_file() for folder in [SHARED, *pub.weights_folders()]),
    reason="no copy of the published weights here (they come from the shared folder or a download)",
)


@pytest.fixture
def no_download(monkeypatch):
    """Any download attempt fails as it does offline."""

    def offline(url: str, timeout_s: float) -> bytes:
        raise OSError("Name or service not known")

    monkeypatch.setattr(pub, "_download", offline)


@pytest.fixture
def empty_places(tmp_path, monkeypatch):
    """$RESNET_BOOK_WEIGHTS, the checkout's shared folder and the cache all empty folders of tmp_path."""
    monkeypatch.setenv(pub.WEIGHTS_ENV, str(tmp_path / "env"))
    monkeypatch.setattr(pub, "_CHECKOUT_SHARED", tmp_path / "shared")
    monkeypatch.setattr(pub, "cache_folder", lambda: tmp_path / "cache")
    for name in ("env", "shared"):
        (tmp_path / name).mkdir()
    return tmp_path


def _raw_state(depth: int) -> dict[str, torch.Tensor]:
    """The publisher's own state dict (keys 'module.conv1.weight', ...), read the plain way."""
    path = pub.weights_file(depth, download=False)
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _reference_logits(sd: dict[str, torch.Tensor], depth: int, pixels: torch.Tensor, split: bool) -> torch.Tensor:
    """The publisher's ResNet, written out with torch.nn.functional from its raw state dict."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (pixels - mean) / std

    def bn(x: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5
        )

    x = F.relu(bn(F.conv2d(x, sd["module.conv1.weight"], padding=1), "module.bn1"))
    n = (depth - 2) // 6
    for stage in (1, 2, 3):
        for b in range(n):
            p = f"module.layer{stage}.{b}"
            stride = 2 if stage > 1 and b == 0 else 1
            out = F.relu(bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
            out = bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), p + ".bn2")
            if stride == 2:
                extra = out.shape[1] - x.shape[1]
                before = extra // 2 if split else 0
                x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, before, extra - before))
            x = F.relu(out + x)
    x = F.adaptive_avg_pool2d(x, 1).flatten(1)
    return F.linear(x, sd["module.linear.weight"], sd["module.linear.bias"])


def test_the_registry_is_the_shared_folders_checksums():
    sums = SHARED / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"{sums} is not here")
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    assert {net.file: net.sha256 for net in pub.PUBLISHED.values()} == listed
    for net in pub.PUBLISHED.values():
        assert net.sha256.startswith(net.file.split("-")[1].split(".")[0]), "the 8 digits in the name start the sum"
        assert pub.COMMIT in net.url and net.url.endswith("/pretrained_models/" + net.file)


@needs_files
@pytest.mark.parametrize("depth", [20, 56])
def test_the_loaded_net_is_the_publishers_function(depth: int):
    pixels = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(depth))
    net = pub.load_published(depth)
    with torch.no_grad():
        ours = net(pub.prepare_images(pixels))
        theirs = _reference_logits(_raw_state(depth), depth, pixels, split=True)
        appended = _reference_logits(_raw_state(depth), depth, pixels, split=False)
    assert (ours - theirs).abs().max() < 1e-4
    assert (appended - theirs).abs().max() > 1.0, "the zero-channel placement must matter, or this test shows nothing"


@needs_files
def test_the_other_placement_gives_other_logits():
    """The same weights in a net whose option A appends its zeros compute another function."""
    pixels = pub.prepare_images(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    split = pub.load_published(20)
    appended = CifarNet(20, zero_padding="append").eval()
    appended.load_state_dict(split.state_dict())
    with torch.no_grad():
        assert (split(pixels) - appended(pixels)).abs().max() > 1.0


def test_a_wrong_placement_name_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^unknown zero_padding 'middle'; choose one of: append, split$"):
        CifarNet(20, zero_padding="middle")


def test_split_padding_puts_half_the_zeros_before_the_channels():
    from resnet_lib.models.cifar import ZeroPadShortcut

    x = torch.arange(1.0, 5.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    out = ZeroPadShortcut(4, 8, stride=2, zero_padding="split")(x)
    assert out[0, :, 0, 0].tolist() == [0, 0, 1, 2, 3, 4, 0, 0]
    out = ZeroPadShortcut(4, 8, stride=2)(x)
    assert out[0, :, 0, 0].tolist() == [1, 2, 3, 4, 0, 0, 0, 0]


class _Planted:
    """A pickle payload: unpickling it creates a file (it must never be unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_with_another_checksum_is_refused_before_unpickling(empty_places, no_download):
    marker = empty_places / "unpickled"
    payload = io.BytesIO()
    pickle.dump({"state_dict": _Planted(marker)}, payload)
    (empty_places / "env" / pub.PUBLISHED[20].file).write_bytes(payload.getvalue())
    with pytest.raises(pub.WeightsChecksumError) as caught:
        pub.load_published(20)
    message = str(caught.value)
    assert "\n" not in message and pub.PUBLISHED[20].file in message and "SHA-256" in message
    assert not marker.exists(), "the planted file was unpickled"


def test_offline_with_no_copy_is_one_line(empty_places, no_download):
    with pytest.raises(pub.WeightsUnavailableError) as caught:
        pub.load_published(56)
    message = str(caught.value)
    assert "\n" not in message and "could not be downloaded" in message and pub.WEIGHTS_ENV in message
    nets, missing = pub.load_available((20, 56))
    assert nets == {} and set(missing) == {20, 56}


@needs_files
def test_a_download_is_verified_and_kept_in_the_cache(empty_places, monkeypatch):
    real = SHARED / pub.PUBLISHED[20].file
    if not real.is_file():
        pytest.skip("the shared copy is not here")
    body = real.read_bytes()
    asked = []
    monkeypatch.setattr(pub, "_download", lambda url, timeout_s: asked.append(url) or body)
    path = pub.weights_file(20)
    assert asked == [pub.PUBLISHED[20].url] and path == empty_places / "cache" / pub.PUBLISHED[20].file
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pub.PUBLISHED[20].sha256
    asked.clear()
    assert pub.weights_file(20) == path and asked == [], "a verified copy in the cache is not downloaded again"


def test_a_corrupt_download_is_not_kept(empty_places, monkeypatch):
    monkeypatch.setattr(pub, "_download", lambda url, timeout_s: b"not the file")
    with pytest.raises(pub.WeightsChecksumError, match="nothing was kept"):
        pub.weights_file(32)
    assert not (empty_places / "cache" / pub.PUBLISHED[32].file).exists()


def test_an_unpublished_depth_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^no published weights for depth 110; choose one of: 20, 32, 44, 56$"):
        pub.load_published(110)


def test_the_environment_folder_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv(pub.WEIGHTS_ENV, "~/some/where")
    folders = pub.weights_folders()
    assert folders[0] == Path.home() / "some" / "where" and folders[-1] == pub.cache_folder()


def test_images_of_another_shape_are_refused():
    with pytest.raises(ValueError, match=r"take \(N, 3, 32, 32\) images, got shape \(2, 3, 16, 16\)"):
        pub.prepare_images(torch.zeros(2, 3, 16, 16))
