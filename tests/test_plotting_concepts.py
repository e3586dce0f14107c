"""Chapter 3's function-class sketch: two panels, labelled with the depths it is given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from resnet_lib.plots.degradation import plot_function_classes


def test_function_classes_has_two_titled_panels_naming_the_depths():
    fig, axes = plot_function_classes((20, 110))
    assert len(axes) == 2 and all(ax.get_title() for ax in axes)
    texts = [t.get_text() for t in axes[1].texts]
    assert "plain-20" in texts and "plain-110: contains plain-20" in texts
    assert len(axes[0].patches) == 6 and len(axes[1].patches) == 6  # three classes, each filled and outlined
    plt.close(fig)
