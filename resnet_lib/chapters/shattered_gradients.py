"""Chapter 4's study: shattering (lag-1 autocorrelation, pair correlation) against depth, over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from resnet_lib.measure.gradients import gradient_samples
from resnet_lib.measure.statistics import lag1_autocorrelation, pair_correlation, pair_correlation_band
from resnet_lib.models.scalar import NetSpec


@dataclass
class DepthSweep:
    """Shattering measured over depths and seeds, for several kinds of net.

    ``lag1[kind]`` is ``(len(depths), len(seeds))``: each net's lag-1 autocorrelation.
    ``pair[kind]`` is ``(len(depths),)``: :func:`pair_correlation` over the seeds' nets;
    ``pair_band[kind]`` its ``(len(depths), 2)`` bootstrap band (10% and 90%).
    ``samples[(kind, depth)]`` keeps the gradients, ``(len(seeds), n_inputs)``.
    """

    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    specs: dict[str, NetSpec]
    lag1: dict[str, np.ndarray]
    pair: dict[str, np.ndarray]
    pair_band: dict[str, np.ndarray]
    samples: dict[tuple[str, int], np.ndarray]


def shattering_sweep(
    kinds: Sequence[NetSpec],
    depths: Sequence[int],
    seeds: Sequence[int],
    units: int = 200,
    n_inputs: int = 256,
    progress: bool = True,
) -> DepthSweep:
    """Measure every kind of net (its ``depth`` is ignored) at every depth, one net per seed."""
    if not depths or not seeds:
        raise ValueError("depths and seeds must both be non-empty")
    specs = {spec.kind: spec for spec in kinds}
    lag1, pair, band, samples = {}, {}, {}, {}
    bar = tqdm(total=len(specs) * len(depths) * len(seeds), desc="depth sweep", disable=not progress, leave=False)
    for kind, spec in specs.items():
        lag1[kind], pair[kind], band[kind] = [], [], []
        for depth in depths:
            bar.set_postfix_str(f"{kind}, depth {depth}")
            rows = []
            for seed in seeds:
                rows.append(gradient_samples(spec.at_depth(depth), [seed], units, n_inputs)[0])
                bar.update(1)
            g = samples[(kind, depth)] = np.stack(rows)
            lag1[kind].append(lag1_autocorrelation(g))
            pair[kind].append(pair_correlation(g) if len(seeds) > 1 else np.nan)
            band[kind].append(pair_correlation_band(g) if len(seeds) > 1 else (np.nan, np.nan))
        lag1[kind], pair[kind], band[kind] = np.array(lag1[kind]), np.array(pair[kind]), np.array(band[kind])
    bar.close()
    return DepthSweep(tuple(depths), tuple(seeds), specs, lag1, pair, band, samples)
