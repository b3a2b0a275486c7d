"""Commit a plan as a weight edit of the HF model behind a bridge, journaled so it can be undone.

The edit equals the plan's preview: ``zero`` zeroes the component's write slice (and its read
slices, so its activation is exactly zero); ``mean`` does the same after folding
``W_write @ mean`` into the write's bias; ``rescale`` multiplies the write slice.

>>> journal = commit(bridge, AblationPlan.zero([Component.parse("L0.N7")]))  # doctest: +SKIP
>>> journal.undo()                                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from attribution.components import ModelShape
from loka.engine.adapters import Adapter, ComponentParams, ParamSlice, adapter_for, hf_parameters
from loka.engine.errors import PlanError, UndoError
from loka.engine.plan import AblationPlan


@dataclass(frozen=True)
class JournalEntry:
    """One edit: values of ``param[dim, start:stop]`` before (``old``) and after (``new``) it."""

    param: str
    dim: int
    start: int
    stop: int
    old: Tensor
    new: Tensor
    bridge_copy: bool = False

    @property
    def where(self) -> ParamSlice:
        return ParamSlice(self.param, self.dim, self.start, self.stop)

    def overlaps(self, other: JournalEntry) -> bool:
        return self.param == other.param and (
            self.dim != other.dim or (self.start < other.stop and other.start < self.stop))


class Journal:
    """Every edit one commit made, in order; `undo` restores the old values bit for bit."""

    def __init__(self, params: Mapping[str, Tensor], plan: AblationPlan) -> None:
        self.plan = plan
        self.entries: list[JournalEntry] = []
        self.undone = False
        self._params = params

    def edit(self, where: ParamSlice, change: Callable[[Tensor], object]) -> None:
        """Apply ``change`` in place to the slice, recording its values before and after."""
        view = where.of(self._params[where.param])
        old = view.detach().clone()
        # Journal first, so an interrupt during the change is still rolled back.
        entry = JournalEntry(where.param, where.dim, where.start, where.stop, old, old,
                             where.bridge_copy)
        self.entries.append(entry)
        with torch.no_grad():
            change(view)
        self.entries[-1] = replace(entry, new=view.detach().clone())

    def undo(self, force: bool = False) -> None:
        """Restore every edited slice, last edit first.

        Refuses (model untouched) if a slice has changed since the commit — e.g. a later commit
        that is still in place, or fine-tuning — unless ``force``.
        """
        if self.undone:
            raise UndoError("this journal has already been undone")
        if not force:
            self._check_unchanged()
        with torch.no_grad():
            for e in reversed(self.entries):
                e.where.of(self._params[e.param]).copy_(e.old)
        self.undone = True

    def _check_unchanged(self) -> None:
        for i, e in enumerate(self.entries):
            if any(e.overlaps(later) for later in self.entries[i + 1:]):
                continue  # a later edit of this journal rewrote it; that one is checked instead
            current = e.where.of(self._params[e.param])
            if not torch.equal(current, e.new):
                raise UndoError(f"{e.param} changed since this commit; undo later edits first "
                                "(or undo(force=True) to restore anyway)")

    def n_changed(self) -> int:
        """How many entries of the HF model's parameters differ from before the commit."""
        masks: dict[str, Tensor] = {}
        for e in self.entries:
            if e.bridge_copy:
                continue
            param = self._params[e.param]
            mask = masks.setdefault(e.param, torch.zeros(param.shape, dtype=torch.bool))
            e.where.of(mask).logical_or_(e.old.cpu() != e.new.cpu())
        return int(sum(int(m.sum()) for m in masks.values()))

    def __repr__(self) -> str:
        state = "undone" if self.undone else "applied"
        return f"Journal({len(self.entries)} edits, {state}, plan={self.plan.mode} x{len(self.plan.components)})"


def _resolve(adapter: Adapter, plan: AblationPlan, params: Mapping[str, Tensor]
             ) -> list[tuple[ComponentParams, tuple[ParamSlice, ...]]]:
    """Each component's parameters, checked to exist and fit, before anything is edited."""
    out = []
    for c in plan.components:
        p = adapter.params(c)
        reads = tuple(s for s in p.reads if s.param in params)
        for s in (p.write, *p.reads):
            if s.param not in params:
                if s.required:
                    raise PlanError(f"{c}: the model has no parameter {s.param}")
                continue
            if s.stop > params[s.param].shape[s.dim]:
                raise PlanError(f"{c}: {s.param} has {params[s.param].shape[s.dim]} entries along "
                                f"axis {s.dim}, the component needs {s.start}:{s.stop}")
        if plan.mode == "mean" and (p.bias is None or p.bias not in params):
            raise PlanError(f"{c}: mean mode folds the mean into the bias of {p.write.param}, and "
                            f"this {adapter.name} model has none; use mode 'zero' or 'rescale'")
        out.append((p, reads))
    return out


def commit(bridge: Any, plan: AblationPlan) -> Journal:
    """Edit ``bridge.original_model``'s weights as ``plan`` says; all or nothing, journaled."""
    adapter = adapter_for(bridge)
    plan.check_fits(ModelShape.of(bridge))
    params = hf_parameters(bridge)
    resolved = _resolve(adapter, plan, params)
    journal = Journal(params, plan)
    try:
        with torch.no_grad():
            for i, (p, reads) in enumerate(resolved):
                _apply(journal, plan, i, p, reads, params)
        _check_finite(journal)
    except BaseException:
        journal.undo(force=True)  # leave the model as it was, then report what went wrong
        raise
    return journal


def _check_finite(journal: Journal) -> None:
    """An edit that leaves a non-finite weight (a rescale factor that overflows the weights'
    dtype: 1e39 is a finite Python float but not a float32) is refused, and undone by `commit`."""
    for e in journal.entries:
        if not bool(torch.isfinite(e.new).all()):
            dtype = e.new.dtype
            raise PlanError(f"the edit makes {e.param} non-finite (NaN or infinity in "
                            f"{str(dtype).removeprefix('torch.')}; largest finite value "
                            f"{torch.finfo(dtype).max:.3g}): use a smaller rescale factor")


def _apply(journal: Journal, plan: AblationPlan, i: int, p: ComponentParams,
           reads: tuple[ParamSlice, ...], params: Mapping[str, Tensor]) -> None:
    if plan.mode == "rescale":
        factor = plan.factors()[i]
        journal.edit(p.write, lambda v: v.mul_(factor))
        return
    if plan.mode == "mean":
        assert plan.means is not None and p.bias is not None  # checked by _resolve
        w = p.write.of(params[p.write.param]).movedim(p.write.dim, -1).double()
        shift = w @ torch.tensor(plan.means[i], dtype=torch.float64, device=w.device)
        bias = ParamSlice(p.bias, 0, 0, params[p.bias].shape[0])
        journal.edit(bias, lambda v: v.add_(shift.to(v.dtype)))
    journal.edit(p.write, lambda v: v.zero_())
    for s in reads:
        journal.edit(s, lambda v: v.zero_())


class EditSession:
    """A stack of commits on one bridge, undone last-first.

    >>> session = EditSession(bridge)                  # doctest: +SKIP
    >>> session.commit(plan_a); session.commit(plan_b)  # doctest: +SKIP
    >>> session.undo_all()                              # doctest: +SKIP
    """

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge
        self.journals: list[Journal] = []

    @property
    def plans(self) -> list[AblationPlan]:
        return [j.plan for j in self.journals]

    def commit(self, plan: AblationPlan) -> Journal:
        journal = commit(self.bridge, plan)
        self.journals.append(journal)
        return journal

    def undo_last(self) -> AblationPlan:
        if not self.journals:
            raise UndoError("nothing to undo")
        self.journals[-1].undo()
        return self.journals.pop().plan

    def undo_all(self) -> None:
        while self.journals:
            self.undo_last()
