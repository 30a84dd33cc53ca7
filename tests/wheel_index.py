"""A PEP 503 "simple" index over any wheel (and sdist) files, on disk and on 127.0.0.1.

``build_index(root, files)`` copies the files into ``root`` and writes one page per project
(``<root>/<normalized name>/index.html``) plus the root page, the layout pip and uv read
(https://packaging.python.org/en/latest/specifications/simple-repository-api/):

- each link carries the file's hash in its URL fragment (``#sha256=<hex>``), as PyPI's do;
- ``requires_python`` adds ``data-requires-python`` to a project's links (PEP 503, HTML-escaped);
- ``metadata=True`` writes ``<file>.metadata`` beside each wheel (its ``.dist-info/METADATA``)
  and announces it with ``data-dist-info-metadata`` and ``data-core-metadata`` (PEP 658 / PEP
  714), as PyPI and download.pytorch.org do; ``False`` leaves clients to read the wheel;
- ``layout="pypi"`` keeps the files under ``<root>/files/``; ``layout="pytorch"`` puts them at
  the index root with the file names URL-encoded (``torch-2.13.0%2Bcpu-...whl``), as
  https://download.pytorch.org/whl/cpu/torch/ links them.

Links are relative, so the same tree works as ``WheelIndex.url`` (``file://``) and served over
HTTP (``serve_index``, reusing ``channel.serve_channel``). Nothing here needs the network.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from channel import serve_channel


@dataclass(frozen=True)
class WheelIndex:
    """A built index: ``root`` holds the project pages; ``files`` the distributions in it."""

    root: Path
    files: tuple[Path, ...]

    @property
    def url(self) -> str:
        return self.root.resolve().as_uri()

    def file(self, name: str) -> Path:
        """The copy of the distribution file called ``name`` inside the index."""
        return next(f for f in self.files if f.name == name)


def project_name(filename: str) -> str:
    """The normalized project a wheel or sdist file belongs to."""
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    return str(canonicalize_name(parse_sdist_filename(filename)[0]))


def _wheel_metadata(path: Path) -> bytes | None:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                return archive.read(name)
    return None


def build_index(
    root: Path,
    files: Iterable[Path],
    *,
    layout: str = "pypi",
    metadata: bool = True,
    requires_python: Mapping[str, str] | None = None,
) -> WheelIndex:
    """Copy ``files`` into a new index at ``root`` and write its pages."""
    if layout not in ("pypi", "pytorch"):
        raise ValueError(f"layout must be 'pypi' or 'pytorch', not {layout!r}")
    store = root / "files" if layout == "pypi" else root
    store.mkdir(parents=True, exist_ok=True)
    by_project: dict[str, list[Path]] = {}
    copies = []
    for source in files:
        copy = store / source.name
        shutil.copyfile(source, copy)
        copies.append(copy)
        by_project.setdefault(project_name(source.name), []).append(copy)
    for project, paths in sorted(by_project.items()):
        links = [
            _link(path, layout, metadata, (requires_python or {}).get(project))
            for path in sorted(paths)
        ]
        page = root / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(_page(f"Links for {project}", links))
    root_links = [f'<a href="{quote(p)}/">{p}</a><br/>' for p in sorted(by_project)]
    (root / "index.html").write_text(_page("Simple index", root_links))
    return WheelIndex(root, tuple(copies))


def _link(path: Path, layout: str, metadata: bool, requires_python: str | None) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    prefix = "../files/" if layout == "pypi" else "../"
    # PyTorch's index encodes the `+` of local versions; quote() leaves it alone by default.
    name = quote(path.name, safe="") if layout == "pytorch" else quote(path.name)
    attributes = [f'href="{prefix}{name}#sha256={digest}"']
    if requires_python:
        attributes.append(f'data-requires-python="{html.escape(requires_python)}"')
    core = _wheel_metadata(path) if metadata and path.name.endswith(".whl") else None
    if core is not None:
        path.with_name(path.name + ".metadata").write_bytes(core)
        meta = f"sha256={hashlib.sha256(core).hexdigest()}"
        attributes += [f'data-dist-info-metadata="{meta}"', f'data-core-metadata="{meta}"']
    return f"<a {' '.join(attributes)}>{html.escape(path.name)}</a><br/>"


def _page(title: str, links: list[str]) -> str:
    body = "\n".join(links)
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )


@contextmanager
def serve_index(index: WheelIndex) -> Iterator[str]:
    """``index`` on ``http://127.0.0.1:<free port>``; yields the index URL."""
    with serve_channel(index.root) as url:
        yield url
