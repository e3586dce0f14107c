"""The engine benchmark runs end to end (a smoke test: its numbers are read by people, never asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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


@pytest.mark.slow  # it starts two processes
def test_gpu_benchmark_runs_on_the_cpu_with_every_ratio_and_the_fig6_projection(tmp_path, capsys):
    """Issue 34: the GPU benchmark's --quick setting on the CPU (the GPU-only graph step reads n/a)."""
    bench = _load("gpu_throughput")
    out = tmp_path / "gpu.json"
    with single_thread():
        assert bench.main(["--quick", "--device", "cpu", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for phrase in ("Ratio to the eager step", "Ratio to the engine per-step", "Fig. 6 sweep projected",
                   "n/a here: graph step", "Before this change, one H200"):  # fmt: skip
        assert phrase in text
    result = json.loads(out.read_text())
    assert result["methods"] == [m for m in bench.METHODS if m != "graph_step"]
    row = result["rows"]["8"]
    assert all(v > 0 for v in row["images_per_s"].values()) and row["over_eager_step"]["eager_step"] == 1.0
    # The projection is the measured rate times the sweep's steps (one depth: seconds per step grow with depth).
    per_step = 128 / row["images_per_s"]["engine"]
    expected = 2 * 3 * 64_000 * per_step * sum(d / 8 for d in bench.FIG6_DEPTHS) / 3600
    assert abs(result["fig6_hours"]["engine"] - expected) < 1e-9 * expected
