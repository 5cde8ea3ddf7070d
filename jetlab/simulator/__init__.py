"""The offline simulator: Pythia 8 events, FastJet jets and a parametric detector.

It writes the mini datasets (``jetclass-mini``, ``toptag-mini``, ``zjets-mini``, ``lhco-mini``) as
jetlab schema files (:mod:`jetlab.data.schema`) through :func:`jetlab.simulator.generate.generate`;
:mod:`jetlab.data.sources` and :mod:`jetlab.data.cache` call it for a generator name. FastJet is
imported in one place (:mod:`jetlab.simulator.quiet_fastjet`), also for the data readers and the
observables that recluster.
"""
