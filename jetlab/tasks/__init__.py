"""jetlab.tasks: the physics tasks of the OmniLearn paper, built from the model and training layers.

* :mod:`jetlab.tasks.tagging` - top tagging: fine-tuned vs from-scratch PET vs a PFN (notebook 02);
* :mod:`jetlab.tasks.common` - checkpoint resolution, task data loading, fine-tune/scratch models.

The networks the tasks train (PET, the PFN and observable MLP peers, CATHODE's dijet classifier and
mjj-conditioned generator) are in :mod:`jetlab.model`.

Heavy imports stay inside the sub-modules; ``import jetlab.tasks`` is cheap.
"""
