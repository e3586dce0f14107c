"""The book's sentence rule: a sentence that states a measured comparison is glued from a verdict.

Every markdown sentence of a chapter that compares (higher, lower, better, worse, beats, rises, falls, …)
and carries a measured quantity (a percentage, points, nats, a multiple, seeds) or sits in a chapter's
takeaways must either be glued (``{glue:text}`` from a :class:`resnet_lib.measure.verdicts.Verdict` or
the numbers it was decided on), or quote a source (``{cite}``, a paper's table or figure), or appear in
:data:`NOT_MEASURED` below with the reason it states no measured result (a definition, the architecture,
arithmetic, a theory's prediction). A new unglued comparison fails this test until it is glued or its
reason is written down here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))

COMPARATIVE = re.compile(
    r"\b(higher|lower|better|worse|beats?|beaten|ahead|behind|more than|fewer|less than|above|below|"
    r"rises?|rising|falls?|falling|grows?|growing|shrinks?|faster|slower|larger|smaller|exceeds?|"
    r"outperforms?|improves?|degrades?|drops?|catches up|step by step|as good as|no worse|"
    r"(?:twice|half|\w+ times) (?:as|the)|orders? of magnitude)\b",
    re.I,
)
MEASURED = re.compile(
    r"\d\s*(%|per ?cent|points?\b|nats?\b|×|x\b|times\b)|\bseeds?\b|\bthis (run|page|budget|build)\b|"
    r"\bat this budget\b|\bour (nets|networks|runs)\b|\bwe (saw|measured|found)\b|\bmeasured\b",
    re.I,
)
#: "the cell below", "the section above": where something is on the page, not a comparison.
POSITION = re.compile(
    r"\b(see|shown|printed|cells?|checks?|sections?|figures?|tables?|printout|plots?|explorer|slider|code|listed|"
    r"as|page|text|measured|runs?|lines?|list|one|ones|them|it|that|experiments?|panels?|map)\s+(below|above)\b"
    r"|\b(away|plainly)\s+(below|above)\b|\b(below|above)\s*(?=[(:;,.]|$)",
    re.I,
)
SOURCE = re.compile(r"\{cite[a-z:]*\}|et al\.|\bTable \d|\bFig(?:ure|\.)\s?\d|\bthe paper('s)?\b", re.I)

#: Where a sentence ends (after . ! ? and any closing emphasis), and where a heading or a list item begins.
SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?]\*)|(?<=[.!?]\*\*))\s+(?=[*_#\-]*\s*[A-Z0-9{(])|\s(?=#+ )|\s(?=[-*] )"
)

#: Sentences that compare without stating a measured result of this book's runs: (chapter, the sentence's
#: first words) -> why. Keep each reason specific.
NOT_MEASURED: dict[tuple[str, str], str] = {
    ("01", "A rise from the stem to the last"): "method: how a rise is judged (McNemar, an interval)",
    ("03", "A 3×3 convolution comes first, then three stages"): "architecture: the maps get smaller by design",
    ("03", "The batches come from the library's `iterate_batches` with"): "method: 'step by step' is per step",
    ("03", "With more than one seed, the lines are"): "how the figure is drawn (mean, band from lowest to highest)",
    ("03", "* **Degradation** is a deeper plain net ending"): "a definition of degradation, not a result",
    ("05", "The photo count alone answers that: each error"): "method: each error comes with its interval",
    ("05", "Over seeds 0-3 at the `ci` budget: on"): (
        "a dated record of earlier runs, set apart on the page with its commit, profile and data; not this run"
    ),
    ("05", "- torchvision's ResNet-18 is this chapter's block in"): "architecture: the stages sit behind a stem",
    ("06", "ResNet-56 is far from chance intact: its whole"): "the list of what the check cell asserts, not a result",
    ("08", "Two 3×3 convolutions at 1024 channels: MATH billion,"): "arithmetic: multiply-adds of two layers",
}


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def sentences(markdown: str) -> list[tuple[str, bool]]:
    """``(sentence, in_takeaways)`` for the prose of one markdown cell (math, code and roles' targets blanked)."""
    takeaways = bool(re.search(r"\{admonition\}\s*Key takeaways|^#+ (Key takeaways|Summary)", markdown, re.M))
    text = re.sub(r"^(`{3,})(?!\{admonition\}).*?^\1", " ", markdown, flags=re.M | re.S)  # code blocks
    text = re.sub(r"^(`{3,}|:{3,})\{admonition\}[^\n]*|^:\w+:.*$|^`{3,}\s*$", " ", text, flags=re.M)
    text = re.sub(r"\$\$.*?\$\$", " MATH ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", " MATH ", text)
    text = re.sub(r"\s+", " ", text)
    parts = re.split(SENTENCE_BREAK, text)
    return [(p.strip(), takeaways) for p in parts if p.strip()]


def unglued_comparisons(markdown: str) -> list[str]:
    """The sentences of ``markdown`` that state a measured comparison with no glue and no source."""
    found = []
    for sentence, in_takeaways in sentences(markdown):
        bare = POSITION.sub(" ", re.sub(r"\{\w+\}`[^`]*`", " ", sentence))  # roles' targets, page positions
        if "{glue" in sentence or SOURCE.search(sentence) or not COMPARATIVE.search(bare):
            continue
        if sentence.rstrip("*_ ").endswith("?") or re.match(r"[*_]*Predict\b", sentence):
            continue  # a question asks the reader; it states no result
        if in_takeaways or MEASURED.search(bare):
            found.append(sentence)
    return found


def _key(chapter: str, sentence: str) -> tuple[str, str]:
    return chapter, " ".join(sentence.split()[:8])


def _violations(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for sentence in unglued_comparisons(_source(cell)):
            if _key(path.name[:2], sentence) not in NOT_MEASURED:
                out.append(sentence)
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_measured_comparison_is_glued(path: Path):
    found = _violations(path)
    assert not found, (
        f"{path.name}: {len(found)} sentence(s) state a measured comparison without a glued verdict "
        "(glue it from resnet_lib.measure.verdicts, or add it to NOT_MEASURED with the reason):\n- "
        + "\n- ".join(found)
    )


def test_every_exemption_is_still_in_the_book():
    present = set()
    for path in CHAPTERS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                present |= {_key(path.name[:2], s) for s in unglued_comparisons(_source(cell))}
    stale = sorted(set(NOT_MEASURED) - present)
    assert not stale, f"exemptions for sentences no longer in the book (remove them): {stale}"


@pytest.mark.parametrize(
    "markdown, flagged",
    [
        ("On this run ResNet-56 ends 2.1 points behind ResNet-20.", True),
        ("ResNet-56 ends {glue:text}`ch5_gap:.1f` points {glue:text}`ch5_direction` ResNet-20.", False),
        ("He et al. report 6.97% for ResNet-56, lower than ResNet-20's 8.75%.", False),
        (
            "```{admonition} Key takeaways\n:class: tip\n* Deleting more blocks raises the error step by step.\n```",
            True,
        ),
        ("Stages 2 and 3 halve the resolution of the maps.", False),
        ("The probe stays 2.3 points below the net's own classifier.", True),
        ("Predict first: does plain-56 still end behind, in every seed?", False),
    ],
)
def test_the_detector_flags_what_the_rule_names(markdown: str, flagged: bool):
    assert bool(unglued_comparisons(markdown)) is flagged
