"""Does the committed generator still make the jets a recipe's model was trained on?

The shipped model's training jets were generated before its code was committed. This regenerates the
first chunk of every class with the code as it is now (``n_jets`` = chunk size x classes: chunk seeds
depend only on the seed, dataset, class and chunk index, so chunk 0 of a class is the same in a small
and a large request) and looks each regenerated jet up, by (pT, eta, phi) to 1e-4, in the recipe's
cached training file (generated files are shuffled, so by content, not by position).

    python benchmarks/check_recipe_data.py --json benchmarks/results/foundation_data_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="jetlab-foundation")
    ap.add_argument("--json", type=Path, default=None, help="write the raw result to this file")
    args = ap.parse_args()

    from jetlab.data.sources import resolve
    from jetlab.simulator.generate import GENERATORS
    from jetlab.train.recipes import recipe

    r = recipe(args.recipe)
    chunk = int(GENERATORS[r.dataset].options["chunk_size"])
    n_classes = 10 if r.classes == "all" else len(r.classes)
    start = time.perf_counter()
    trained_on = resolve(r.dataset, n_jets=r.n_jets, seed=r.seed, classes=r.classes, progress=False).read()
    small = resolve(r.dataset, n_jets=chunk * n_classes, seed=r.seed, classes=r.classes, progress=False)
    again = small.read()

    def keys(jets: np.ndarray) -> list[tuple]:
        return [tuple(row) for row in np.round(jets[:, :3].astype(np.float64), 4)]

    known = set(keys(trained_on.jets))
    found = np.array([k in known for k in keys(again.jets)])
    per_class = {
        name: {"regenerated": int((again.labels == i).sum()), "found": int(found[again.labels == i].sum())}
        for i, name in enumerate(small.label_names)
    }
    out = {
        "command": f"python benchmarks/check_recipe_data.py --recipe {args.recipe}",
        "machine": f"{platform.machine()}",
        "recipe": r.name,
        "training_file_jets": int(len(trained_on)),
        "regenerated_jets": int(len(again)),
        "found_in_training_file": int(found.sum()),
        "per_class": per_class,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
