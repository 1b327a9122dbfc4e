"""Point the repository's links at another GitHub repository, a fork: one command, every place at once.

    python tools/set_repo_url.py https://github.com/OWNER/NAME      (or: make repo-url URL=...)

The address lives in pyproject.toml ([project.urls] Repository). Every notebook's Colab badge and install cell,
and the README's badges, spell it out, because they are read before the library is installed; this rewrites each
of them from the old address to the new one (the .py source and the .ipynb of a notebook alike, so that the pair
stays in sync), and `make test` checks that they all agree with pyproject.toml.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

URL = re.compile(r"https://github\.com/([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})")
REPOSITORY_LINE = re.compile(r'^Repository = "([^"]+)"$', re.M)


def current_url(root: Path) -> str:
    match = REPOSITORY_LINE.search((root / "pyproject.toml").read_text())
    if not match:
        raise SystemExit("pyproject.toml has no [project.urls] Repository line to change")
    return match.group(1)


def files_to_rewrite(root: Path) -> list[Path]:
    return [root / "pyproject.toml", root / "README.md", *sorted((root / "notebooks").glob("*.py")),
            *sorted((root / "notebooks").glob("*.ipynb"))]


def set_repo_url(root: Path, new: str) -> list[Path]:
    """Rewrite ``root``'s links from pyproject.toml's address to ``new``; returns the files that changed."""
    match = URL.fullmatch(new.rstrip("/"))
    if not match:
        raise SystemExit(f"expected the address of a GitHub repository, https://github.com/OWNER/NAME, got {new!r}")
    new = match.group(0)
    old = current_url(root)
    old_path, new_path = old.removeprefix("https://github.com/"), new.removeprefix("https://github.com/")
    changed = []
    for path in files_to_rewrite(root):
        if not path.exists():
            continue
        text = path.read_text()
        # the repository itself, and Colab's address of a file in it (colab.research.google.com/github/OWNER/NAME)
        rewritten = text.replace(old, new).replace(f"/github/{old_path}/", f"/github/{new_path}/")
        if rewritten != text:
            path.write_text(rewritten)
            changed.append(path)
    return changed


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python tools/set_repo_url.py https://github.com/OWNER/NAME")
    root = Path(__file__).resolve().parent.parent
    changed = set_repo_url(root, argv[0])
    print(f"{len(changed)} files now point at {current_url(root)}: " + ", ".join(str(p.relative_to(root)) for p in changed))


if __name__ == "__main__":
    main(sys.argv[1:])
