"""jetlab.tasks: the physics tasks of the OmniLearn paper, built from the model and training layers.

* :mod:`jetlab.tasks.tagging` - top tagging: fine-tuned vs from-scratch PET vs a PFN (notebook 02);
* :mod:`jetlab.tasks.common` - checkpoint resolution, task data loading, fine-tune/scratch models;
* :mod:`jetlab.tasks.baselines` - Particle Flow Network and an observable MLP (classic peers).

Heavy imports stay inside the sub-modules; ``import jetlab.tasks`` is cheap.
"""
