"""The standard unlearning baselines, registered by name behind `loka.methods.unlearn`.

``gradient_ascent`` ``grad_diff`` ``npo`` ``task_vector`` ``counterexample`` (optimisation, with
the divergence guard and early stopping of `loka.methods.training`), ``retrain`` (the gold
standard) and ``output_suppression`` (the negative control). Defaults: `DEFAULTS`.

>>> from loka.methods import unlearn, task_from_world
>>> result = unlearn(art.base_dir, task_from_world(art), method="npo")   # doctest: +SKIP
"""

from loka.methods.baselines import (  # noqa: F401  (importing registers the methods)
    counterexample,
    grad_diff,
    gradient_ascent,
    npo,
    output_suppression,
    retrain,
    task_vector,
)
from loka.methods.baselines.defaults import DEFAULTS
from loka.methods.baselines.output_suppression import RefusalFilter, apply_refusal_filter

__all__ = ["DEFAULTS", "RefusalFilter", "apply_refusal_filter"]
