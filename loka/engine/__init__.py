"""The ablation engine: plans, reversible previews, journaled weight edits.

>>> plan = AblationPlan.zero([Component.parse("L0.N7")])  # doctest: +SKIP
>>> with preview(bridge, plan):                             # doctest: +SKIP
...     ablated = bridge(tokens)
>>> journal = commit(bridge, plan)                          # doctest: +SKIP
>>> journal.undo()                                          # doctest: +SKIP
"""

from attribution.components import Component, ModelShape
from loka.engine.adapters import (
    ADAPTERS,
    Adapter,
    ComponentParams,
    ParamSlice,
    adapter_for,
    hf_parameters,
    hf_state_dict,
)
from loka.engine.commit import EditSession, Journal, JournalEntry, commit
from loka.engine.errors import (
    PlanError,
    UndoError,
    UnsupportedArchitectureError,
)
from loka.engine.plan import AblationMode, AblationPlan, Provenance, mean_activations
from loka.engine.preview import ablation_hooks, preview

__all__ = [
    "ADAPTERS", "AblationMode", "AblationPlan", "Adapter",
    "Component", "ComponentParams", "EditSession", "Journal", "JournalEntry", "ModelShape",
    "ParamSlice", "PlanError", "Provenance", "UndoError", "UnsupportedArchitectureError",
    "ablation_hooks", "adapter_for", "commit", "hf_parameters", "hf_state_dict",
    "mean_activations", "preview",
]
