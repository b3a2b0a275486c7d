"""LOKA's own unlearning procedures, one file each, registered by name (`loka.methods.registry`).

- ``loka``: iterative ablation — ablate the top few attributed components, re-rank, repeat until
  the forget accuracy reaches a target or a retain-damage budget is hit; commits one `AblationPlan`.
- ``loka-ft``: localized optimisation — train only the weights the top-k components own.
- ``loka-mask``: a learned rescale per attributed component, committed as a ``rescale`` plan.

>>> from loka.methods import unlearn
>>> result = unlearn(art.base_dir, task, method="loka-ft", k=256)   # doctest: +SKIP
"""
