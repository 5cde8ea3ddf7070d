"""Which raw files of a fetched dataset belong to which split, in reading order.

``raw_files(name, directory)`` looks at what ``jetlab data fetch NAME`` left in ``directory``
(``$JETLAB_DATA/NAME``): file names as in ``data_manifests/NAME.yaml``. Numbers in names are
ordered by value (``_2`` before ``_10``). JetClass tarballs are extracted once (safely, with
:func:`jetlab.data.archives.extract_tar`) into ``directory`` and their ROOT files listed.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import PathLike, natural_key

#: JetClass file prefixes in label order (``ZJetsToNuNu`` = QCD ... ``TTBarLep`` = Tbl).
JETCLASS_PREFIXES: tuple[str, ...] = (
    "ZJetsToNuNu", "HToBB", "HToCC", "HToGG", "HToWW4Q", "HToWW2Q1L", "ZToQQ", "WToQQ", "TTBar", "TTBarLep",
)  # fmt: skip
#: JetClass split -> (directory inside the tarballs, tarball name pattern).
JETCLASS_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train_100M", "JetClass_Pythia_train_100M_part*.tar"),
    "val": ("val_5M", "JetClass_Pythia_val_5M.tar"),
    "test": ("test_20M", "JetClass_Pythia_test_20M.tar"),
}
OMNIFOLD_RE = re.compile(r"^(?P<gen>[A-Za-z]+\d*)_Zjet_pTZ-200GeV_(?P<i>\d+)\.npz$")
LHCO_FILES: dict[str, tuple[str, ...]] = {
    "events": ("events_anomalydetection_v2.h5",),
    "features": ("events_anomalydetection_v2.features.h5",),
    "three_prong": ("events_anomalydetection_Z_XY_qqq.h5",),
    "three_prong_features": ("events_anomalydetection_Z_XY_qqq.features.h5",),
    "background_mc": ("events_LHCO2020_backgroundMC_Pythia.h5",),
    "blackbox": ("events_LHCO2020_BlackBox1.h5", "events_LHCO2020_BlackBox2.h5", "events_LHCO2020_BlackBox3.h5"),
}
RAW_FILE_DATASETS = ("jetclass", "atlas_toptag", "omnifold_zjets", "lhco_rnd", "aspen_open_jets")


def jetclass_order(path: PathLike) -> tuple:
    """JetClass ROOT files by file index, then class: HToBB_000, ..., TTBarLep_000, HToBB_001, ...

    Reading the first N jets of a split then samples the classes in turn (file by file) instead
    of exhausting one class first; names that do not follow ``<Prefix>_<index>.root`` go last.
    """
    prefix, _, index = Path(path).stem.rpartition("_")
    if index.isdigit() and prefix in JETCLASS_PREFIXES:
        return (0, int(index), JETCLASS_PREFIXES.index(prefix), "")
    return (1, 0, 0, Path(path).name)


def _jetclass(d: Path, extract: bool) -> dict[str, list[Path]]:
    from ..archives import extract_tar

    out: dict[str, list[Path]] = {}
    for split, (sub, pattern) in JETCLASS_SPLITS.items():
        tars = sorted(d.glob(pattern), key=natural_key)
        files: set[Path] = set()
        if extract:
            for tar in tars:
                files.update(p for p in extract_tar(tar, d) if p.suffix == ".root")
        if (d / sub).is_dir():
            files.update((d / sub).glob("*.root"))
        if files:
            out[split] = sorted(files, key=jetclass_order)
    return out


def _atlas(d: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        shards = sorted(d.glob(f"{split}_nominal_*.h5.gz"), key=natural_key)
        # a shard someone decompressed by hand and deleted the .gz of still counts
        have = {p.name[:-3] for p in shards}
        shards += [p for p in d.glob(f"{split}_nominal_*.h5") if p.name not in have]
        if shards:
            out[split] = sorted(shards, key=natural_key)
        elif (d / f"{split}.h5").is_file():  # record 15013 (2022)
            out[split] = [d / f"{split}.h5"]
    return out


def _omnifold(d: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in d.glob("*_Zjet_pTZ-200GeV_*.npz"):
        m = OMNIFOLD_RE.match(p.name)
        if m:
            out.setdefault(m.group("gen"), []).append(p)
    return {g: sorted(v, key=natural_key) for g, v in sorted(out.items())}


def _lhco(d: Path) -> dict[str, list[Path]]:
    out = {}
    for split, names in LHCO_FILES.items():
        present = [d / n for n in names if (d / n).is_file()]
        if present:
            out[split] = present
    return out


def _aspen(d: Path) -> dict[str, list[Path]]:
    files = sorted(d.glob("RunG_batch*.h5"), key=natural_key) + sorted(d.glob("RunH_batch*.h5"), key=natural_key)
    return {"jets": files} if files else {}


_EXPECTED = {
    "jetclass": "JetClass_Pythia_{train_100M_part*,val_5M,test_20M}.tar or extracted train_100M/ val_5M/ test_20M/",
    "atlas_toptag": "train_nominal_*.h5.gz / test_nominal_*.h5.gz (or the 2022 train.h5 / test.h5)",
    "omnifold_zjets": "<Generator>_Zjet_pTZ-200GeV_<i>.npz",
    "lhco_rnd": "events_anomalydetection_v2.h5 (and .features.h5, black boxes)",
    "aspen_open_jets": "RunG_batch*.h5 / RunH_batch*.h5",
}


def raw_files(name: str, directory: PathLike, *, extract: bool = True) -> dict[str, list[Path]]:
    """The raw files of dataset ``name`` in ``directory``, per split, in reading order.

    Splits: ``jetclass`` train / val / test (ROOT files from ``train_100M/``, ``val_5M/``,
    ``test_20M/``; tarballs present are extracted there first unless ``extract=False``);
    ``atlas_toptag`` train / test (2024 ``*_nominal_NNN.h5.gz`` shards, else 2022 ``train.h5`` /
    ``test.h5``); ``omnifold_zjets`` one split per generator (``Herwig``, ``Pythia21``, ...: its
    17 npz in numeric order); ``lhco_rnd`` ``events``, ``features`` (and ``three_prong``,
    ``three_prong_features``, ``background_mc``, ``blackbox`` when present); ``aspen_open_jets``
    ``jets`` (Run G then Run H batches). Only splits with files are returned; none at all is a
    FileNotFoundError that names the directory and the files expected.
    """
    d = Path(directory)
    listers = {"jetclass": lambda: _jetclass(d, extract), "atlas_toptag": lambda: _atlas(d),
               "omnifold_zjets": lambda: _omnifold(d), "lhco_rnd": lambda: _lhco(d), "aspen_open_jets": lambda: _aspen(d)}  # fmt: skip
    if name not in listers:
        raise ValueError(f"raw_files: unknown dataset {name!r}; known: {list(RAW_FILE_DATASETS)}")
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such directory (expected the fetched files of {name!r}: {_EXPECTED[name]})")
    found = listers[name]()
    if not found:
        raise FileNotFoundError(f"{d}: no {name} files found (expected {_EXPECTED[name]})")
    return found
