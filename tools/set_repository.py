"""Point the book at the GitHub repository it is published from.

``_config.yml``'s ``repository.url`` is the one place that names the repository, and
``html.baseurl`` the GitHub Pages site built from it. Copies that cannot read the config
follow it: every notebook's install cell (Colab runs a notebook alone), the README's badge
and links, and CONTRIBUTING's set-up cell. ``tests/test_publishing.py`` checks that they agree.

    python tools/set_repository.py OWNER/NAME   # rewrite the config and its copies, then commit
    python tools/set_repository.py --show       # print the configured repository and site
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
COPIES = ["README.md", "CONTRIBUTING.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("*.ipynb"))]
SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


def configured() -> tuple[str, str]:
    """``(repository URL, site URL)`` as ``_config.yml`` names them."""
    config = yaml.safe_load(CONFIG.read_text())
    return config["repository"]["url"], config["html"]["baseurl"]


def site_for(slug: str) -> str:
    """The GitHub Pages address of repository ``OWNER/NAME``."""
    owner, name = slug.split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def set_repository(slug: str) -> list[str]:
    """Rewrite the config and every copy for ``OWNER/NAME``; returns the files changed."""
    if not SLUG.match(slug):
        raise ValueError(f"{slug!r} is not a GitHub repository; give OWNER/NAME, e.g. my-name/resnet-book")
    old_url, old_site = configured()
    new_url, new_site = f"https://github.com/{slug}", site_for(slug)
    changed = []
    for name in ["_config.yml", *COPIES]:
        path = ROOT / name
        text = path.read_text()
        new = text.replace(old_site, new_site).replace(old_url, new_url)
        if new != text:
            path.write_text(new)
            changed.append(name)
    return changed


def main(argv: list[str]) -> int:
    if argv == ["--show"]:
        url, site = configured()
        print(f"repository {url}\nsite       {site}")
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    try:
        changed = set_repository(argv[0])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"now {configured()[0]} (site {configured()[1]}); changed: {', '.join(changed) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
