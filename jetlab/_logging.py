"""Where jetlab's messages go: the one handler the CLI and notebooks attach to the ``jetlab`` logger.

Library modules log through ``logging.getLogger(__name__)``; the package logger itself carries only
a :class:`logging.NullHandler` (set in ``jetlab/__init__.py``), so a program that imports jetlab
decides what it shows. ``jetlab`` commands (:func:`jetlab.cli.main.main`) and notebooks
(:func:`jetlab.notebook.setup`) call :func:`show_messages`: INFO and above then appear as plain
lines on standard output, where a notebook cell shows them and ``jetlab run`` reads its stages.
"""

from __future__ import annotations

import logging
import sys

#: the package logger every ``jetlab.*`` module logger propagates to
PACKAGE_LOGGER = "jetlab"


class CurrentStdoutHandler(logging.StreamHandler):
    """A stream handler that writes to ``sys.stdout`` as it is when a message is logged.

    A notebook kernel and pytest's ``capsys`` replace ``sys.stdout``; a handler bound to the stream
    of the moment it was made would keep writing to a stale one after that.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)  # not StreamHandler.__init__: the stream is looked up per message

    @property
    def stream(self):
        return sys.stdout


def show_messages(level: int = logging.INFO) -> logging.Handler:
    """Show the ``jetlab`` logger's messages at ``level`` and above on stdout as plain lines.

    Idempotent: repeated calls (a notebook run twice, several commands in one process) reuse the
    handler attached the first time instead of printing every message once more. Returns it.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = next((h for h in logger.handlers if isinstance(h, CurrentStdoutHandler)), None)
    if handler is None:
        handler = CurrentStdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


__all__ = ["PACKAGE_LOGGER", "CurrentStdoutHandler", "show_messages"]
