"""Load-or-train: finished runs saved as plain files, keyed by everything that shaped them.

A run is a JSON record (config, history, timings, where it ran) plus a ``.pt`` file of
weights. The key hashes the run's configuration *and* the source of ``resnet_lib``
itself, so a change to the library never serves a stale result. Files are written
atomically; a corrupt or partial file is detected (JSON that does not parse, or weights
whose SHA-256 does not match the record) and the run is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

RESULTS_ENV = "RESNET_BOOK_RESULTS"
FORMAT_VERSION = 1
PACKAGE_DIR = Path(__file__).resolve().parent


def results_dir() -> Path:
    """``$RESNET_BOOK_RESULTS``, else ``~/.cache/resnet_book/results``."""
    path = Path(os.environ.get(RESULTS_ENV) or Path.home() / ".cache" / "resnet_book" / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=1)
def library_source_hash() -> str:
    """SHA-256 of every ``.py`` file of ``resnet_lib`` (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def result_key(config: dict) -> str:
    """A short hash of ``config`` plus the library's source hash."""
    blob = json.dumps({"config": config, "library": library_source_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class StoredRun:
    """A finished run: its JSON record, and where its weights lie (if any)."""

    record: dict
    weights_path: Path | None
    from_cache: bool

    def load_weights(self, model: torch.nn.Module) -> torch.nn.Module:
        """Load the run's weights into ``model`` (built with the same configuration)."""
        if self.weights_path is None:
            raise ValueError(f"run {self.record.get('name')} stored no weights")
        model.load_state_dict(torch.load(self.weights_path, map_location="cpu", weights_only=True))
        return model


def _paths(name: str, key: str, directory: Path) -> tuple[Path, Path]:
    stem = f"{name}-{key}"
    return directory / f"{stem}.json", directory / f"{stem}.pt"


def read_run(json_path: Path) -> StoredRun | None:
    """The run stored at ``json_path``, or ``None`` when it is missing, partial or corrupt."""
    try:
        record = json.loads(json_path.read_text())
        if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION or not record.get("complete"):
            return None
        weights = json_path.with_suffix(".pt")
        if record.get("weights_sha256"):
            if not weights.exists() or _sha256_file(weights) != record["weights_sha256"]:
                return None
            return StoredRun(record, weights, from_cache=True)
        return StoredRun(record, None, from_cache=True)
    except (OSError, ValueError):
        return None


def stored_run(name: str, config: dict, directory: Path | None = None) -> StoredRun | None:
    """The finished run stored for ``(name, config)``, or ``None`` when there is none (or it is corrupt)."""
    json_path, _ = _paths(name, result_key({"name": name, **config}), directory or results_dir())
    return read_run(json_path)


def load_or_run(
    name: str,
    config: dict,
    run: Callable[[Path], tuple[dict, dict | None]],
    directory: Path | None = None,
    verbose: bool = True,
) -> StoredRun:
    """Return the stored run for ``(name, config)``, or call ``run(checkpoint_path)`` and store it.

    ``run`` returns ``(record, state_dict_or_None)``; the record must be JSON-ready.
    ``checkpoint_path`` is where ``run`` may keep a checkpoint so that an interrupted
    run resumes; it is deleted once the result is stored.
    """
    directory = directory or results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = result_key({"name": name, **config})
    json_path, weights_path = _paths(name, key, directory)
    stored = read_run(json_path)
    if stored is not None:
        return stored
    if json_path.exists() and verbose:
        print(f"{json_path.name} is corrupt or partial; running it again")
    checkpoint = directory / f"{name}-{key}.ckpt"
    started = time.perf_counter()
    record, state_dict = run(checkpoint)
    record = {
        "format": FORMAT_VERSION,
        "name": name,
        "key": key,
        "config": config,
        **record,
        "library_hash": library_source_hash(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads(),
        },
        "wall_seconds": time.perf_counter() - started,
        "weights_sha256": None,
    }
    if state_dict is not None:
        tmp = weights_path.with_name(f".{weights_path.name}.{os.getpid()}.tmp")
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, weights_path)
        record["weights_sha256"] = _sha256_file(weights_path)
    record["complete"] = True
    atomic_write_bytes(json_path, json.dumps(record, indent=1, default=str).encode())
    checkpoint.unlink(missing_ok=True)
    return StoredRun(record, weights_path if state_dict is not None else None, from_cache=False)
