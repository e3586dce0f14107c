"""The engine benchmark runs end to end (a smoke test: its numbers are read by people, never asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from resnet_lib.threads import single_thread

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_engine_benchmark_reports_every_method_and_ratio(tmp_path, capsys):
    bench = _load("engine_throughput")
    out = tmp_path / "bench.json"
    with single_thread():
        argv = ["--models", "resnet20", "--steps", "1", "--rounds", "1", "--threads", "1", "--clock", "cpu"]
        assert bench.main([*argv, "--precision", "bf16", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for phrase in ("engine fp32/torchvision", "engine/engine fp32", "target engine (bf16)/torchvision", "s/epoch"):
        assert phrase in text
    result = json.loads(out.read_text())
    assert result["fast_precision"] == "bf16"
    row = result["rows"]["resnet20"]
    assert set(row["images_per_s"]) == set(bench.METHODS)
    assert all(v > 0 for v in row["images_per_s"].values())
    assert row["engine_over_torchvision"] > 0 and row["engine_share_of_model_alone"] > 0
