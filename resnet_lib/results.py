"""The one run store: finished runs saved as plain files, verified whenever they are read back.

A run is a JSON record (config, history, data, timings, where it ran) plus a ``.pt`` file of
weights, in a :class:`RunStore` folder. The results cache the chapters share
(:func:`results_cache`, used by :func:`resnet_lib.runs.cifar_run`) keys a run by its
configuration *and* the source of ``resnet_lib`` itself, so a change to the library never
serves a stale result; a ``python -m resnet_lib.reproduce`` folder names its files after the
run and refuses another configuration instead; :mod:`resnet_lib.full_results` reads what it wrote.
Every run is written with :func:`write_run` and read with :func:`verify_run`, which checks

* the record against a schema (fields and their types, the history's included),
* a SHA-256 of the record's body (``body_sha256``), so an edited number is noticed, and
* the SHA-256 of the weights file (``weights_sha256``), so lost or damaged weights are noticed.

Files are written atomically (:func:`atomic_write_bytes`, the library's one atomic writer),
weights as bytes serialized in memory, so identical runs write identical files. Records are strict
JSON (:func:`dumps_strict`: a NaN or infinity, e.g. a diverged run's last loss, is written as
``{"$float": "NaN"}``); :func:`loads_record` reads them, and older records' bare ``NaN`` too.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

RESULTS_ENV = "RESNET_BOOK_RESULTS"
#: 2: records carry ``body_sha256`` and a schema-checked history (with ``diverged_reason``).
FORMAT_VERSION = 2
PACKAGE_DIR = Path(__file__).resolve().parent


class RunRecordError(ValueError):
    """A stored run that cannot be trusted: one line saying which file and why."""


class ResultsFolderError(OSError):
    """A results folder that cannot be written (checked before any training)."""


def absolute_folder(value: str | Path) -> Path:
    """``value`` with ``~`` expanded, made absolute: a relative path against the working directory this
    process had when it first saw it, so a later ``chdir`` does not move the folder."""
    return _absolute(os.path.expanduser(os.fspath(value)))


@lru_cache(maxsize=64)
def _absolute(expanded: str) -> Path:
    return Path(expanded).absolute()


def results_dir() -> Path:
    """``$RESNET_BOOK_RESULTS`` (``~`` expanded, made absolute), else ``~/.cache/resnet_book/results``."""
    return absolute_folder(os.environ.get(RESULTS_ENV) or Path.home() / ".cache" / "resnet_book" / "results")


@lru_cache(maxsize=1)
def library_source_hash() -> str:
    """SHA-256 of every ``.py`` file of ``resnet_lib`` (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def config_key(config: dict) -> str:
    """A short hash of ``config`` alone (``reproduce`` keys its checkpoints by it)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def result_key(config: dict) -> str:
    """A short hash of ``config`` plus the library's source hash."""
    blob = json.dumps({"config": config, "library": library_source_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- files


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The temporary file is a fresh one (``tempfile.mkstemp``: a random name, created with
    ``O_EXCL``, so a file or symlink planted beside ``path`` is never written through), in the
    same folder, then renamed over ``path``; it gets the mode a plain ``open`` would give.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` and prove it writable, or raise a one-line :class:`ResultsFolderError`."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test.{os.getpid()}"
        atomic_write_bytes(probe, b"")
        probe.unlink()
    except OSError as exc:
        raise ResultsFolderError(
            f"results folder {directory} is not writable ({exc.strerror or type(exc).__name__}); "
            "choose another folder (e.g. $RESNET_BOOK_RESULTS or --out)"
        ) from None
    return directory


def weights_bytes(state_dict: dict) -> bytes:
    """``state_dict`` (moved to the CPU) as the bytes of a ``.pt`` file: the same tensors, the same bytes."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- records


def body_sha256(record: dict) -> str:
    """SHA-256 of a record's canonical JSON, without its own ``body_sha256`` field."""
    body = {k: v for k, v in record.items() if k != "body_sha256"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


#: How a non-finite float is written in a record (strict JSON has no NaN or Infinity): ``{"$float": "NaN"}``.
NONFINITE_TAG = "$float"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _tag_nonfinite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return {NONFINITE_TAG: "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")}
    if isinstance(obj, dict):
        return {k: _tag_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_tag_nonfinite(v) for v in obj]
    return obj


def _untag_nonfinite(obj: dict):
    if len(obj) == 1 and obj.get(NONFINITE_TAG) in _NONFINITE:
        return _NONFINITE[obj[NONFINITE_TAG]]
    return obj


def dumps_strict(record: dict) -> bytes:
    """``record`` as strict JSON (RFC 8259): NaN and infinities written as ``{"$float": "NaN"}`` etc."""
    return json.dumps(_tag_nonfinite(record), indent=1, allow_nan=False).encode()


def loads_record(text: str | bytes):
    """A JSON record as :func:`dumps_strict` wrote it (``{"$float": ...}`` back to floats); older records'
    bare ``NaN``/``Infinity`` are read too. Nesting too deep for the parser is a ``ValueError``."""
    try:
        return json.loads(text, object_hook=_untag_nonfinite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def as_json(obj):
    """``obj`` as it reads back from JSON (tuples as lists, unknown objects as strings)."""
    return json.loads(json.dumps(obj, default=str))


def seal(record: dict) -> dict:
    """``record`` as JSON sees it, with its ``body_sha256`` (set it last: any later edit breaks it)."""
    record = as_json(record)
    record["body_sha256"] = body_sha256(record)
    return record


_NUMBER = (int, float)
_RECORD_FIELDS = {
    "format": int,
    "name": str,
    "key": str,
    "config": dict,
    "history": dict,
    "data": dict,
    "library_hash": str,
    "created": str,
    "machine": dict,
    "weights_sha256": (str, type(None)),
    "complete": bool,
    "body_sha256": str,
}
_HISTORY_FIELDS = {
    "epochs": list,
    "step_losses": list,
    "diverged": bool,
    "diverged_at_step": (int, type(None)),
    "precision": str,
    "diverged_reason": (str, type(None)),
}
_EPOCH_FIELDS = {
    "epoch": int,
    "step": int,
    "lr": _NUMBER,
    "train_loss": _NUMBER,
    "train_error": _NUMBER,
    "test_loss": _NUMBER,
    "test_error": _NUMBER,
    "seconds": _NUMBER,
}
_DATA_FIELDS = {"name": str, "label": str, "n_train": int, "n_val": int, "n_test": int, "image_size": int}


def _type_problem(where: str, obj: dict, fields: dict) -> str | None:
    for name, kind in fields.items():
        if name not in obj:
            return f"{where} has no {name!r}"
        value = obj[name]
        if isinstance(value, bool) and kind in (int, _NUMBER):
            return f"{where}.{name} is {value!r}, not a number"
        if not isinstance(value, kind):
            return f"{where}.{name} is {type(value).__name__}, not {getattr(kind, '__name__', 'a number')}"
    return None


def record_problem(record) -> str | None:
    """What is wrong with ``record`` as a stored run (schema and body checksum), or ``None``."""
    if not isinstance(record, dict):
        return "not a run record (not a JSON object)"
    if record.get("format") != FORMAT_VERSION:
        return f"format {record.get('format')!r}, not {FORMAT_VERSION}"
    if record.get("complete") is not True:
        return "not marked complete"
    problem = _type_problem("record", record, _RECORD_FIELDS)
    problem = problem or _type_problem("history", record["history"], _HISTORY_FIELDS)
    problem = problem or _type_problem("data", record["data"], _DATA_FIELDS)
    if problem:
        return problem
    history = record["history"]
    for i, epoch in enumerate(history["epochs"]):
        if not isinstance(epoch, dict):
            return f"history.epochs[{i}] is not an object"
        problem = _type_problem(f"history.epochs[{i}]", epoch, _EPOCH_FIELDS)
        if problem:
            return problem
    if not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in history["step_losses"]):
        return "history.step_losses holds something other than numbers"
    if history["diverged"] != (history["diverged_at_step"] is not None):
        return "history.diverged and history.diverged_at_step disagree"
    if record["body_sha256"] != body_sha256(record):
        return "its body does not match its checksum (body_sha256): it was edited or damaged"
    return None


@dataclass
class StoredRun:
    """A finished run as its store holds it, verified: its JSON record, and where its verified weights lie.

    Any run's, whatever it trained (a CIFAR net, a chapter-8 net, a test's stand-in): the record
    is plain JSON. :class:`resnet_lib.runs.CifarRun` is a trained CIFAR net read from one of these.
    ``from_cache`` is ``True`` when it was read back, ``False`` when it was stored just now.
    """

    record: dict
    weights_path: Path | None
    from_cache: bool
    json_path: Path | None = None
    weights_problem: str | None = None

    def load_weights(self, model: torch.nn.Module) -> torch.nn.Module:
        """Load the run's weights into ``model`` (built with the same configuration)."""
        if self.weights_path is None:
            raise ValueError(self.weights_problem or f"run {self.record.get('name')} stored no weights")
        model.load_state_dict(torch.load(self.weights_path, map_location="cpu", weights_only=True))
        return model


def verify_run(json_path: str | Path, weights: str = "required") -> StoredRun:
    """The run stored at ``json_path``, checked; a one-line :class:`RunRecordError` when it fails.

    ``weights="required"``: a record that names weights needs its ``.pt`` beside it, matching
    ``weights_sha256``. ``"optional"`` (a history is enough): missing or mismatched weights leave
    ``weights_path`` ``None`` and say why in ``weights_problem``.
    """
    json_path = Path(json_path)
    try:
        record = loads_record(json_path.read_bytes())
    except FileNotFoundError:
        raise RunRecordError(f"{json_path}: does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = str(exc) if str(exc) == "nested too deeply" else type(exc).__name__
        raise RunRecordError(f"{json_path}: not readable JSON ({why})") from None
    problem = record_problem(record)
    if problem:
        raise RunRecordError(f"{json_path}: {problem}")
    sha = record["weights_sha256"]
    if sha is None:
        return StoredRun(record, None, True, json_path)
    weights_path = json_path.with_suffix(".pt")
    try:
        found = _sha256(weights_path.read_bytes())
        problem = None if found == sha else f"its weights {weights_path} do not match weights_sha256"
    except OSError:
        problem = f"its weights {weights_path} are missing"
    if problem is None:
        return StoredRun(record, weights_path, True, json_path)
    if weights == "required":
        raise RunRecordError(f"{json_path}: {problem}")
    return StoredRun(record, None, True, json_path, f"{problem}; only the history is available")


def read_run(json_path: Path) -> StoredRun | None:
    """The verified run stored at ``json_path``, or ``None`` when it is missing, partial or corrupt."""
    try:
        return verify_run(json_path)
    except RunRecordError:
        return None


def machine() -> dict:
    """Where this process runs (recorded with every run)."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def write_sealed(path: str | Path, record: dict) -> dict:
    """Write ``record`` to ``path`` as sealed JSON (with its ``body_sha256``), atomically; the sealed record."""
    record = seal(record)
    atomic_write_bytes(path, dumps_strict(record))
    return record


def read_sealed(path: str | Path) -> dict | None:
    """The sealed JSON object at ``path``, or ``None`` when it is missing, unreadable or fails its checksum."""
    try:
        record = loads_record(Path(path).read_bytes())
        return record if record["body_sha256"] == body_sha256(record) else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def write_run(json_path: str | Path, record: dict, state_dict: dict | None) -> StoredRun:
    """Store ``record`` at ``json_path`` and ``state_dict`` (if any) beside it as ``.pt``; sealed.

    ``record`` needs the fields :func:`record_problem` checks, bar ``format``, ``complete``,
    ``weights_sha256`` and ``body_sha256``, which are set here. The weights are written first,
    the record last, so a record on disk always has its weights.
    """
    json_path = Path(json_path)
    weights_path = json_path.with_suffix(".pt")
    record = {**record, "format": FORMAT_VERSION, "weights_sha256": None}
    if state_dict is not None:
        blob = weights_bytes(state_dict)
        atomic_write_bytes(weights_path, blob)
        record["weights_sha256"] = _sha256(blob)
    record["complete"] = True
    problem = record_problem(seal(record))
    if problem:
        raise ValueError(f"refusing to store {json_path.name}: {problem}")
    record = write_sealed(json_path, record)  # sealed again: the same record, the same checksum
    return StoredRun(record, weights_path if state_dict is not None else None, False, json_path)


def config_differences(there: dict, here: dict, prefix: str = "") -> list[str]:
    """Every field where configuration ``there`` (stored) and ``here`` (asked for) differ, as
    ``"recipe.epochs: 2 there, 3 now"``."""
    out = []
    for k in sorted(set(there) | set(here)):
        a, b = there.get(k), here.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} there, {b!r} now")
    return out


class RunConflictError(ValueError):
    """A named run store holds a run of this name made with another configuration (one line)."""


@dataclass(frozen=True)
class RunStore:
    """A folder of finished runs: where a run's files lie, storing one, and the verified run found there.

    ``by_key=True`` (the results cache, :func:`results_cache`): a run is found by its key, a hash
    of its name, configuration *and* the library's source, which also names its files
    (``<name>-<key>.json``), so a changed configuration or library is another run, never a stale one.
    ``by_key=False`` (a ``python -m resnet_lib.reproduce`` folder): files are named after the run
    (``<name>.json``) and keyed by the configuration alone; a run stored there with another
    configuration is a :class:`RunConflictError`, never replaced. Either way a run's checkpoint is
    ``<name>-<key>.ckpt``, and every read is verified (:func:`verify_run`).
    """

    directory: Path
    by_key: bool = True

    def key(self, name: str, config: dict) -> str:
        """The run's key: see the class's docstring."""
        return result_key({"name": name, **config}) if self.by_key else config_key(config)

    def record_path(self, name: str, config: dict) -> Path:
        """The run's JSON record (its weights lie beside it, as ``.pt``)."""
        stem = f"{name}-{self.key(name, config)}" if self.by_key else name
        return Path(self.directory) / f"{stem}.json"

    def checkpoint_path(self, name: str, config: dict) -> Path:
        """Where the run keeps its checkpoint while it trains (removed once it is stored)."""
        return Path(self.directory) / f"{name}-{self.key(name, config)}.ckpt"

    def find(self, name: str, config: dict, say: Callable[[str], None] | None = None) -> StoredRun | None:
        """The verified run stored for ``(name, config)``, weights included, or ``None``.

        A record there that fails verification (or, by key, was made for another configuration)
        is ``None``, with one line through ``say``: the run is to be made again.
        """
        path, here = self.record_path(name, config), as_json(config)
        if not path.exists():
            return None
        try:
            stored = verify_run(path)
        except RunRecordError as exc:
            problem = str(exc).removeprefix(f"{path}: ")
        else:
            there = stored.record["config"]
            if not self.by_key and there != here:
                diff = "; ".join(config_differences(there, here)[:3])
                raise RunConflictError(f"{path} was made with other settings ({diff})")
            if (stored.record["name"], stored.record["key"], there) == (name, self.key(name, config), here):
                return stored
            problem = "made for another configuration"
        if say is not None:
            say(f"{path.name} is corrupt or partial ({problem}); running it again")
        return None

    def write(self, name: str, config: dict, record: dict, state_dict: dict | None) -> StoredRun:
        """Store the run ``record`` describes (see :func:`write_run`; the folder is made if need be) and
        remove its checkpoint.

        Added here: ``name``, ``key``, ``config``, ``library_hash``, ``created``, and ``machine``
        unless ``record`` has its own.
        """
        record = {
            "machine": machine(),
            **record,
            "name": name,
            "key": self.key(name, config),
            "config": config,
            "library_hash": library_source_hash(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        stored = write_run(self.record_path(name, config), record, state_dict)
        self.checkpoint_path(name, config).unlink(missing_ok=True)
        return stored

    def load_or_run(
        self,
        name: str,
        config: dict,
        run: Callable[[Path], tuple[dict, dict | None]],
        say: Callable[[str], None] | None = print,
    ) -> StoredRun:
        """The stored run for ``(name, config)``, or call ``run(checkpoint_path)`` and store what it returns.

        ``run`` returns ``(record, state_dict_or_None)``; the record must be JSON-ready and hold
        ``history`` and ``data``. ``checkpoint_path`` is where ``run`` may keep a checkpoint so that
        an interrupted run resumes. The folder is checked writable before ``run`` starts.
        """
        stored = self.find(name, config, say)
        if stored is not None:
            return stored
        check_writable(self.directory)
        started = time.perf_counter()
        record, state_dict = run(self.checkpoint_path(name, config))
        return self.write(name, config, {**record, "wall_seconds": time.perf_counter() - started}, state_dict)

    def runs(self, weights: str = "optional", say: Callable[[str], None] | None = None) -> list[StoredRun]:
        """Every verified run in the folder, by file name; a record that fails (see :func:`verify_run`,
        ``weights`` as there) is left out, with one line through ``say``."""
        found = []
        for path in sorted(Path(self.directory).glob("*.json")):
            try:
                found.append(verify_run(path, weights=weights))
            except RunRecordError as exc:
                if say is not None:
                    say(f"skipping {exc}")
        return found


def results_cache(directory: str | Path | None = None) -> RunStore:
    """The results cache the chapters share: ``directory``, else :func:`results_dir` (keyed by library source)."""
    return RunStore(Path(directory) if directory is not None else results_dir())


def stored_run(name: str, config: dict, directory: Path | None = None) -> StoredRun | None:
    """The verified run the results cache holds for ``(name, config)``, or ``None`` (see :meth:`RunStore.find`)."""
    return results_cache(directory).find(name, config)


def load_or_run(
    name: str,
    config: dict,
    run: Callable[[Path], tuple[dict, dict | None]],
    directory: Path | None = None,
    verbose: bool = True,
) -> StoredRun:
    """:meth:`RunStore.load_or_run` in the results cache (``directory``, else :func:`results_dir`).

    A stored run that fails :func:`verify_run` (or was made for another configuration) is run
    again, with one line saying why when ``verbose``.
    """
    return results_cache(directory).load_or_run(name, config, run, say=print if verbose else None)


__all__ = [
    "FORMAT_VERSION",
    "RESULTS_ENV",
    "ResultsFolderError",
    "RunConflictError",
    "RunRecordError",
    "RunStore",
    "StoredRun",
    "absolute_folder",
    "atomic_write_bytes",
    "check_writable",
    "config_differences",
    "config_key",
    "dumps_strict",
    "library_source_hash",
    "load_or_run",
    "loads_record",
    "read_run",
    "read_sealed",
    "record_problem",
    "result_key",
    "results_cache",
    "results_dir",
    "seal",
    "stored_run",
    "verify_run",
    "weights_bytes",
    "write_run",
    "write_sealed",
]
