"""MkDocs hook: the root CONTRIBUTING.md and CHANGELOG.md are pages of the site, as they are.

``docs/contributing.md`` and ``docs/changelog.md`` are placeholders; their
content is read from the root files when the site is built. Those files link
from the repository root (``docs/results.md``, ``CHANGELOG.md``), as GitHub
renders them; inside the site the links are rewritten to the site's own pages
before MkDocs checks them.
"""

import re
from pathlib import Path

ROOT_PAGES = {"CHANGELOG.md": "changelog.md", "CONTRIBUTING.md": "contributing.md"}


def on_page_markdown(markdown, page, config, files):
    root = {site: name for name, site in ROOT_PAGES.items()}.get(page.file.src_uri)
    if root is None:
        return markdown
    text = (Path(config["config_file_path"]).parent / root).read_text(encoding="utf-8")
    text = re.sub(r"\]\(docs/", "](", text)
    for name, site in ROOT_PAGES.items():
        text = text.replace(f"]({name})", f"]({site})")
    return text
