"""Which raw files of a fetched dataset belong to which split, in reading order.

``raw_files(name, directory)`` looks at what ``jetlab data fetch NAME`` left in ``directory``
(``$JETLAB_DATA/NAME``): file names as in ``data_manifests/NAME.yaml``. Numbers in names are
ordered by value (``_2`` before ``_10``). JetClass tarballs are extracted once (safely, with
:func:`jetlab.data.archives.extract_tar`) to where ``jetlab data fetch`` unpacks them
(:func:`jetlab.data.download.unpack_target`), and the ROOT files of each split are listed from
the publisher's folders, each file once.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..schema import SchemaError
from ._common import PathLike, natural_key

log = logging.getLogger(__name__)

#: JetClass file prefixes in label order (``ZJetsToNuNu`` = QCD ... ``TTBarLep`` = Tbl).
JETCLASS_PREFIXES: tuple[str, ...] = (
    "ZJetsToNuNu", "HToBB", "HToCC", "HToGG", "HToWW4Q", "HToWW2Q1L", "ZToQQ", "WToQQ", "TTBar", "TTBarLep",
)  # fmt: skip
#: JetClass split -> (the folder that holds its ROOT files once unpacked, tarball name pattern).
#: The publisher's layout (jet-universe/particle_transformer, get_datasets.py and train_JetClass.sh):
#: the train parts hold bare ROOT files and are extracted into ``train_100M/`` (the manifest's
#: ``unpack_to``); the val and test tarballs hold the folders ``val_5M/`` and ``test_20M/``.
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


def _jetclass_manifest():
    from ..manifests import ManifestError, load_manifest

    try:
        return load_manifest("jetclass")
    except ManifestError:  # $JETLAB_MANIFESTS lists other datasets only: the packaged one still holds the layout
        return load_manifest(Path(__file__).resolve().parents[1] / "_manifests" / "jetclass.yaml")


def jetclass_extract_dir(tarball: PathLike) -> Path:
    """Where JetClass ``tarball`` is extracted: where ``jetlab data fetch`` unpacks it.

    The manifest entry of that name decides (:func:`jetlab.data.download.unpack_target`: a train
    part into ``train_100M/`` beside it, val/test beside it); a tarball the manifest does not
    name is extracted beside itself.
    """
    from ..download import unpack_target
    from ..manifests import ManifestError

    tar = Path(tarball)
    try:
        entry = _jetclass_manifest().file(tar.name)
    except ManifestError:
        return tar.parent
    return unpack_target(entry, tar.parent)


def _extract_jetclass_tarball(tar: Path, d: Path, folder: Path) -> None:
    """Extract ``tar`` once where fetch puts it; its ROOT files must land in the split's ``folder``."""
    from ..archives import ArchiveError, extract_tar, unpacked_marker

    target = jetclass_extract_dir(tar)
    if target != d and unpacked_marker(d, tar).is_file():
        log.warning(
            "%s was also extracted into %s by an older jetlab (files listed in %s): that copy is not read "
            "and can be deleted",
            tar.name,
            d,
            unpacked_marker(d, tar),
        )
    try:
        members = extract_tar(tar, target)
    except ArchiveError as exc:
        raise SchemaError(str(exc)) from None
    stray = [p for p in members if p.suffix == ".root" and p.parent != folder]
    if stray:
        raise SchemaError(
            f"{tar}: not laid out as the publisher ships it: extracted into {target}, it put "
            f"{stray[0].relative_to(target)} outside {folder.name}/ (train parts hold bare ROOT files, "
            f"the val/test tarballs a val_5M/ or test_20M/ folder)"
        )


def _jetclass(d: Path, extract: bool) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for split, (sub, pattern) in JETCLASS_SPLITS.items():
        folder = d / sub
        if extract:
            for tar in sorted(d.glob(pattern), key=natural_key):
                _extract_jetclass_tarball(tar, d, folder)
        # one folder per split, each file once (a link to a file already listed is the same file)
        files = {p.resolve(): p for p in folder.glob("*.root")} if folder.is_dir() else {}
        if files:
            out[split] = sorted(files.values(), key=jetclass_order)
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

    Splits: ``jetclass`` train / val / test (the ROOT files in ``train_100M/``, ``val_5M/``,
    ``test_20M/``, each once; tarballs present are first extracted where ``jetlab data fetch``
    unpacks them, once, unless ``extract=False``);
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
