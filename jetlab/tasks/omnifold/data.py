"""OmniFold's four event sets from a generator name, a schema file or the published Z+jets files."""

from __future__ import annotations

import os

from jetlab.data.schema import JetSet
from jetlab.data.sources import resolve

__all__ = ["OMNIFOLD_DATA", "OMNIFOLD_SIM", "load_omnifold_data"]

#: the published Z+jets generators OmniFold and OmniLearn unfold: Pythia 8.2 tune 21 as simulation,
#: Herwig 7 as pseudo-data
OMNIFOLD_SIM, OMNIFOLD_DATA = "Pythia21", "Herwig"


def load_omnifold_data(
    dataset: str | os.PathLike, n_jets: int, seed: int = 0, *, progress: bool = True
) -> dict[str, JetSet]:
    """``{"sim_gen", "sim_reco", "data_gen", "data_reco"}`` JetSets for notebook 03.

    ``dataset`` goes through :func:`jetlab.data.sources.resolve`: a generator name (``"zjets-mini"``), a
    schema file with those four collections, or ``"omnifold_zjets"`` (all npz files of each generator
    from ``jetlab data fetch omnifold_zjets``, :data:`OMNIFOLD_SIM` as simulation and
    :data:`OMNIFOLD_DATA` as pseudo-data, as in the OmniFold and OmniLearn papers). ``n_jets`` rows
    per collection (-1: all).
    """
    names = ("sim_gen", "sim_reco", "data_gen", "data_reco")
    stop = None if n_jets is None or int(n_jets) < 0 else int(n_jets)
    source = resolve(dataset, n_jets=stop, seed=seed, progress=progress)
    if source.has_split(OMNIFOLD_SIM) or source.has_split(OMNIFOLD_DATA):
        missing = [s for s in (OMNIFOLD_SIM, OMNIFOLD_DATA) if not source.has_split(s)]
        if missing:
            raise FileNotFoundError(
                f"load_omnifold_data: {dataset!r} has no {', '.join(missing)} files (has "
                f"{list(source.splits)}); run `jetlab data fetch omnifold_zjets --subset "
                f"{' --subset '.join(missing)}`"
            )
        sets = {
            f"{role}_{level}": source.read(level, split=split, stop=stop)
            for role, split in (("sim", OMNIFOLD_SIM), ("data", OMNIFOLD_DATA))
            for level in ("gen", "reco")
        }
    else:
        sets = source.read_all(stop=None if source.kind == "generated" else stop)
    lacking = [n for n in names if n not in sets]
    if lacking:
        raise KeyError(
            f"load_omnifold_data: {dataset!r} lacks collections {lacking} (has {sorted(sets)}); "
            "OmniFold needs sim_gen, sim_reco, data_gen, data_reco"
        )
    return {n: sets[n] for n in names}
