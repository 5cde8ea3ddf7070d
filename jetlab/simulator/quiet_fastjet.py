"""FastJet for jetlab's clustering code, imported so that its banner never reaches the user.

FastJet prints a banner box on the C-level stdout at a process's first clustering: a notebook
would show it mid-results, and each data-generation worker once more. Every place in jetlab that
clusters (the generator, the LHCO reader, the reclustering observables) imports FastJet through
:func:`fastjet_module`, which uses the banner up once per process.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["consume_fastjet_banner", "fastjet_module"]

_BANNER_CONSUMED = False


def consume_fastjet_banner() -> None:
    """Cluster one particle with file descriptor 1 pointed at /dev/null (C++ writes there, bypassing
    ``sys.stdout``). Once per process; also the generator pool's worker initializer."""
    global _BANNER_CONSUMED
    if _BANNER_CONSUMED:
        return
    import fastjet  # optional dependency (the ``gen`` extra)

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
        fastjet.ClusterSequence([fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)], jet_def).inclusive_jets()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _BANNER_CONSUMED = True


def fastjet_module() -> ModuleType:
    """``import fastjet``, with the banner used up (raises ImportError like the import itself)."""
    import fastjet

    consume_fastjet_banner()
    return fastjet
