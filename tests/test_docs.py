"""The API reference (mkdocs.yml, docs/api/) builds from the docstrings without a warning and lists every module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jetlab"
API = ROOT / "docs" / "api"
#: not in the reference: the command line documents itself (--help); the DDP self-test is a test helper
UNDOCUMENTED = ("jetlab.cli", "jetlab.train._ddp_selftest")


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def documented_modules() -> list[str]:
    return [m for page in sorted(API.glob("*.md")) for m in re.findall(r"^::: (\S+)", page.read_text(), re.M)]


def test_docs_build_strictly_from_the_docstrings(tmp_path):
    proc = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    page = (tmp_path / "site" / "api" / "physics" / "index.html").read_text()
    # the reference renders the signature and the docstring of a public function
    assert 'id="jetlab.physics.metrics.roc_metrics"' in page and "labels" in page
    # reST roles in docstrings are shown as code, not as raw ":func:" markup
    assert ":func:" not in page and ":class:" not in page
    # the design document points to the reference (links checked by the strict build) instead of copying signatures
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert "](api/index.md)" in architecture and not re.search(r"`\w+\([^`]*\) ->", architecture)


def test_a_broken_reference_fails_the_build(tmp_path):
    """The same settings with one page naming a module that does not exist: the strict build must fail."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# broken\n\n::: jetlab.physics.metrics.roc_metrics\n\n::: jetlab.physics.no_such_thing\n")
    handler = next(p for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    python = handler["mkdocstrings"]["handlers"]["python"]
    python["paths"] = [str(ROOT)]  # paths in the configuration are relative to its directory
    python["options"]["extensions"] = [str(ROOT / e) for e in python["options"]["extensions"]]
    config.update(docs_dir=str(docs), nav=["index.md"])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "jetlab.physics.no_such_thing" in proc.stderr


def test_every_public_module_is_in_the_api_reference():
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if any(p.startswith("_") for p in parts) or name.startswith(UNDOCUMENTED) or name == "jetlab":
            continue
        modules.append(name)
    listed = documented_modules()
    assert sorted(set(modules) - set(listed)) == [], "modules missing from docs/api/*.md"
    assert len(listed) == len(set(listed)), "a module listed twice"
    # every page is in the navigation (a page outside it would not be found by a reader)
    nav = (ROOT / "mkdocs.yml").read_text()
    assert [p.name for p in sorted(API.glob("*.md")) if f"api/{p.name}" not in nav] == []
