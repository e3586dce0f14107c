"""Explorers that read well without a kernel: the live widget, and a picture of its first state.

An explorer's display bundle carries, beside the widget view that Jupyter and Colab render,
a ``text/html`` view: a static figure of the explorer's first state, a caption, and the
same widget-view tag. The book's HTML builder ranks that ``text/html`` first
(``nb_mime_priority_overrides`` in ``_config.yml``). Where the ipywidgets embed scripts load,
they render the live widget beside the tag and a CSS rule hides the static figure; where they
do not (an offline reader), the static figure and its caption are what the page shows.
"""

from __future__ import annotations

import base64
import html
import io
import json

import ipywidgets as widgets
import matplotlib.pyplot as plt

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATIC_CLASS = "resnet-explorer-static"
_HIDE_WHEN_LIVE = f".resnet-explorer:has(.widget-subarea) > .{STATIC_CLASS} {{ display: none; }}"


def figure_png(fig: plt.Figure) -> bytes:
    """``fig`` as PNG bytes, at the resolution the notebook shows it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def static_caption(settings: str) -> str:
    """The caption under an explorer's static figure."""
    return (
        f"The explorer's first state ({settings}). Its controls redraw the figure in Jupyter or Colab "
        "(the launch buttons at the top of the page); this page has no Python kernel to run them."
    )


def with_static_view(bundle: dict, png: bytes | None, caption: str) -> dict:
    """``bundle`` (a widget's display bundle) plus the ``text/html`` static view described above."""
    view = bundle.get(WIDGET_VIEW_MIME)
    if view is None or not png:
        return bundle
    picture = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    static = (
        f'<div class="resnet-explorer"><style>{_HIDE_WHEN_LIVE}</style>'
        f'<figure class="{STATIC_CLASS}"><img src="data:image/png;base64,{picture}" alt="{text}">'
        f"<figcaption>{text}</figcaption></figure>"
        f'<script type="{WIDGET_VIEW_MIME}">{json.dumps(view)}</script></div>'
    )
    return {**bundle, "text/html": static}


class ExplorerPanel(widgets.VBox):
    """A ``VBox`` of controls and output that displays with a static view of its first state."""

    static_png: bytes | None = None
    static_settings: str = ""

    def _repr_mimebundle_(self, **kwargs):
        return with_static_view(
            super()._repr_mimebundle_(**kwargs), self.static_png, static_caption(self.static_settings)
        )
