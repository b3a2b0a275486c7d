"""The standard unlearning baselines, one file each, registered by name (`loka.methods.registry`).

``gradient_ascent`` ``grad_diff`` ``npo`` ``task_vector`` ``counterexample`` (optimisation, with
the shared loop `loka.methods.loop`, its divergence guard and early stopping) and
``output_suppression`` (the negative control). Settings and defaults: each file's ``Config``.

>>> from loka.methods import unlearn, task_from_world
>>> result = unlearn(art.base_dir, task_from_world(art), method="npo")   # doctest: +SKIP
"""
