"""jetlab's messages go through ``logging``: silent for a library user, plain lines in the CLI and notebooks."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from jetlab._logging import CurrentStdoutHandler, show_messages

PACKAGE = Path(__file__).resolve().parents[1] / "jetlab"
#: where ``print`` stays: the CLI's own output and the notebook display helper (setup's run header)
PRINT_ALLOWED = ("cli/", "notebook.py")


@pytest.fixture
def package_logger():
    """The ``jetlab`` logger, restored afterwards (a handler left behind would print in later tests)."""
    logger = logging.getLogger("jetlab")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_show_messages_writes_plain_lines_to_the_current_stdout_once(package_logger, capsys):
    package_logger.handlers[:] = [h for h in package_logger.handlers if not isinstance(h, CurrentStdoutHandler)]
    first = show_messages()
    assert show_messages() is first  # a second call (notebook cell rerun) adds no second handler
    assert sum(isinstance(h, CurrentStdoutHandler) for h in package_logger.handlers) == 1
    log = logging.getLogger("jetlab.data.cache")
    log.info("jetlab: generated %s in %d:%02d", "toptag-mini", 1, 5)
    log.debug("not shown at INFO")
    # capsys swapped sys.stdout after nothing was bound: the handler follows the current stream
    assert capsys.readouterr() == ("jetlab: generated toptag-mini in 1:05\n", "")


def test_cli_and_notebook_setup_share_one_handler(package_logger, capsys, tmp_path, monkeypatch):
    import jetlab.notebook as jnb
    from jetlab.cli.main import main

    package_logger.handlers[:] = [h for h in package_logger.handlers if not isinstance(h, CurrentStdoutHandler)]
    monkeypatch.setattr(jnb, "_OUTPUT_DIR", None)
    monkeypatch.setattr(jnb, "_CURRENT", None)
    jnb.setup({"output_dir": str(tmp_path / "run"), "seed": 1}, style=False, quiet=True)
    jnb.setup({"output_dir": str(tmp_path / "run"), "seed": 1}, style=False, quiet=True)
    assert main(["data", "list"]) == 0
    assert sum(isinstance(h, CurrentStdoutHandler) for h in package_logger.handlers) == 1
    capsys.readouterr()
    logging.getLogger("jetlab.tasks.checkpoint_resolver").info("checkpoint: %s", "x")
    assert capsys.readouterr().out == "checkpoint: x\n"


def test_a_library_user_sees_nothing_unless_they_configure_logging():
    """Imported as a library, jetlab adds only a NullHandler: its INFO and WARNING messages stay silent
    (no logging.lastResort line on stderr) until the program configures logging itself."""
    code = (
        "import logging, jetlab.data.cache\n"
        "pkg = logging.getLogger('jetlab')\n"
        "print([type(h).__name__ for h in pkg.handlers], pkg.level)\n"
        "logging.getLogger('jetlab.data.cache').warning('a warning')\n"
        "logging.getLogger('jetlab.data.cache').info('an info')\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s|%(message)s')\n"
        "logging.getLogger('jetlab.data.cache').info('now shown')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "['NullHandler'] 0\n"
    assert proc.stderr == "jetlab.data.cache|now shown\n"


def _print_calls(source: str) -> list[int]:
    tree = ast.parse(source)
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


def test_no_print_in_the_library_outside_the_cli_and_notebook_display():
    found = {
        str(p.relative_to(PACKAGE)): lines
        for p in sorted(PACKAGE.rglob("*.py"))
        if not str(p.relative_to(PACKAGE)).startswith(PRINT_ALLOWED) and (lines := _print_calls(p.read_text()))
    }
    assert found == {}, f"print() calls (use logging.getLogger(__name__)): {found}"
    # the check sees a call however it is written, and not the word in a string or an attribute
    assert _print_calls('x = 1\nprint(\n  x)\ns = "print(x)"\nlog.print(x)\n') == [2]
