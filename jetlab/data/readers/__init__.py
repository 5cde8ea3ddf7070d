"""Readers for the public jet datasets, each returning the common schema (:mod:`jetlab.data.schema`).

=================  ====================================  =====================================
name (convert)     reader                                collections
=================  ====================================  =====================================
jetclass           :func:`read_jetclass` (ROOT)          ``jets``, 10 classes
atlas_toptag       :func:`read_atlas_toptag` (HDF5)      ``jets``, QCD / top, training weights
omnifold_zjets     :func:`read_omnifold` (npz)           ``gen`` / ``reco``
lhco_rnd           :func:`read_lhco` (pandas HDF5)       ``jet1`` / ``jet2``, ``extra["mjj"]``
aspen_open_jets    :func:`read_aspen` (HDF5)             ``jets``, unlabelled
=================  ====================================  =====================================

Every reader pT-orders particles, truncates to ``max_particles`` and marks padding with the
mask; malformed input raises :class:`~jetlab.data.schema.SchemaError` naming file and key.
Every reader takes one file, a list or a directory, with ``start``/``stop`` over all files;
:func:`raw_files` lists a fetched dataset's files per split in reading order.
"""

from ._common import PDG_TABLE, DroppedEventsWarning
from .aspen import ASPEN_LABELS, read_aspen
from .atlas import ATLAS_LABELS, read_atlas_toptag
from .convert import DATASETS, convert, write_jetsets_chunked
from .files import RAW_FILE_DATASETS, jetclass_order, raw_files
from .jetclass import JETCLASS_LABELS, read_jetclass
from .lhco import LHCO_LABELS, PandasFrame, read_lhco, read_lhco_features
from .omnifold import PID_CODES, NpzRows, generator_name, read_omnifold

__all__ = [
    "ASPEN_LABELS",
    "ATLAS_LABELS",
    "DATASETS",
    "JETCLASS_LABELS",
    "LHCO_LABELS",
    "PDG_TABLE",
    "PID_CODES",
    "DroppedEventsWarning",
    "NpzRows",
    "PandasFrame",
    "RAW_FILE_DATASETS",
    "convert",
    "generator_name",
    "jetclass_order",
    "read_aspen",
    "read_atlas_toptag",
    "read_jetclass",
    "read_lhco",
    "read_lhco_features",
    "read_omnifold",
    "raw_files",
    "write_jetsets_chunked",
]
