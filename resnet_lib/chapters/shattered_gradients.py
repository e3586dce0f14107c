"""Chapter 4's study: shattering (lag-1 autocorrelation, pair correlation) against depth, over seeds.

The sweep itself is a measurement (:func:`resnet_lib.measure.gradients.shattering_sweep`), so chapter 5 can
re-measure chapter 4's numbers without one chapter importing another; this module is chapter 4's entry to it.
"""

from __future__ import annotations

from resnet_lib.measure.gradients import DepthSweep, shattering_sweep

__all__ = ["DepthSweep", "shattering_sweep"]
