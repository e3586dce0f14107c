"""The explorers' static views (resnet_lib/widgets.py) and the set-up banner."""

from __future__ import annotations

import base64
import json
import re

import matplotlib.pyplot as plt

import resnet_lib as rl
from resnet_lib.plots import shattered_gradients as figs
from resnet_lib.plots.widgets import STATIC_CLASS, WIDGET_VIEW_MIME, figure_png, with_static_view


def _static_view(bundle: dict) -> tuple[bytes, dict]:
    html = bundle["text/html"]
    assert f'class="{STATIC_CLASS}"' in html and "first state" in html
    picture = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    view = re.search(rf'<script type="{re.escape(WIDGET_VIEW_MIME)}">(.*?)</script>', html)
    assert picture and view, html[:300]
    return base64.b64decode(picture[1]), json.loads(view[1])


def test_the_depth_explorer_carries_a_static_view_of_its_first_state():
    panel = figs.depth_explorer(units=8, n_inputs=32, max_depth=30)
    bundle = panel._repr_mimebundle_()
    png, view = _static_view(bundle)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    assert view == bundle[WIDGET_VIEW_MIME], "the static view holds the same widget-view tag"
    assert "plain + BN, depth 24, seed 0" in bundle["text/html"]


def test_no_static_view_without_a_picture():
    bundle = {WIDGET_VIEW_MIME: {"model_id": "x", "version_major": 2, "version_minor": 0}, "text/plain": "VBox()"}
    assert with_static_view(bundle, None, "caption") == bundle


def test_figure_png_is_a_png():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert figure_png(fig).startswith(b"\x89PNG")
    plt.close(fig)


def test_the_banner_names_the_profile_its_source_and_the_results_cache(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("RESNET_BOOK_RESULTS")
    monkeypatch.setenv("HOME", str(tmp_path))
    rl.setup()
    out = capsys.readouterr().out
    assert "profile 'default' ($RESNET_BOOK_PROFILE unset: the default)" in out
    assert f"Results cache: {tmp_path}/.cache/resnet_book/results (the default; set $RESNET_BOOK_RESULTS" in out
    monkeypatch.setenv("RESNET_BOOK_PROFILE", "ci")
    monkeypatch.setenv("RESNET_BOOK_RESULTS", str(tmp_path / "cache"))
    rl.setup()
    out = capsys.readouterr().out
    assert "profile 'ci' ($RESNET_BOOK_PROFILE)" in out and f"Results cache: {tmp_path / 'cache'} ($RESNET_BOOK" in out
    rl.setup(profile="full")
    assert "profile 'full' (rl.setup(profile=...))" in capsys.readouterr().out
