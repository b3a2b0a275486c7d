"""The divergence guard: no optimisation in LOKA ever leaves NaN weights behind.

Every step the loop hands the guard the loss (and its logged parts) *before* the update and the
gradient norm; the guard keeps a CPU snapshot of the trained parameters whose loss it last saw
finite and in bounds. On a non-finite loss, an out-of-bounds part (e.g. forget NLL > 50 nats per
token: the model is anti-predicting, i.e. collapsed), a non-finite gradient norm or non-finite
parameters it restores that snapshot and records where and why the run diverged.

>>> guard = DivergenceGuard(list(model.named_parameters()), limits={"forget_nll": 50.0})  # doctest: +SKIP
>>> guard.check_loss(step=3, loss=loss.item(), parts={"forget_nll": 7.1})                 # doctest: +SKIP
True
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from loka.memory import non_finite_entries


class ParamSnapshot:
    """A CPU copy of named parameters: restore them, or count the entries that moved since.

    ``on_disk``: keep the copy in an anonymous temporary file instead of memory (a large model's
    starting weights, read once at the end: 540 MB of RAM saved on SmolLM2-135M). The file has no
    name on disk, so the operating system removes it even when the process is killed; where it
    cannot be written (a full disk), the copy stays in memory.
    """

    def __init__(self, named: Sequence[tuple[str, nn.Parameter]], on_disk: bool = False) -> None:
        self.named = list(named)
        self.values: dict[str, torch.Tensor] = {}
        self._file: io.BufferedRandom | None = None
        self._where: dict[str, tuple[int, torch.dtype, torch.Size]] = {}
        if on_disk:
            try:
                self._file = tempfile.TemporaryFile(prefix="loka-snapshot-")
                self._write()
            except OSError:
                self.close()
        if self._file is None:
            self._copy_to_memory()

    def _copy_to_memory(self) -> None:
        self.values = {n: p.detach().to("cpu", copy=True) for n, p in self.named}

    def _write(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        for n, p in self.named:
            t = p.detach().to("cpu").contiguous()
            self._where[n] = (self._file.tell(), t.dtype, t.shape)
            self._file.write(t.reshape(-1).view(torch.uint8).numpy().data)
        self._file.flush()

    def value(self, name: str) -> torch.Tensor:
        """The snapshot's value of parameter ``name`` (read back from the file when on disk)."""
        if self._file is None:
            return self.values[name]
        offset, dtype, shape = self._where[name]
        buf = bytearray(shape.numel() * dtype.itemsize)
        self._file.seek(offset)
        if self._file.readinto(buf) != len(buf):
            raise OSError(f"the weight snapshot's file ended early at {name}")
        if not buf:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(shape)

    def refresh(self) -> None:
        if self._file is not None:
            try:
                self._write()
                return
            except OSError:  # the disk filled up since: keep the copy in memory from now on
                self.close()
                self._copy_to_memory()
                return
        for n, p in self.named:
            self.values[n].copy_(p.detach())

    @torch.no_grad()
    def restore(self) -> None:
        for n, p in self.named:
            p.copy_(self.value(n).to(p.device))

    @torch.no_grad()
    def changed(self) -> int:
        """Number of scalar entries whose value differs from the snapshot (NaN counts as changed)."""
        return sum(int((p.detach().cpu() != self.value(n)).sum()) for n, p in self.named)

    def close(self) -> None:
        """Drop a file-backed copy (memory copies go with the object)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def all_finite(named: Sequence[tuple[str, nn.Parameter]]) -> bool:
    return all(non_finite_entries(p) == 0 for _, p in named)


class DivergenceGuard:
    """Watch a run; on trouble restore the last good parameters and remember the step and reason.

    ``snapshot_every``: refresh the snapshot (and check the parameters are finite) every this many
    steps; 1 (every step) is cheap for small models, raise it for large ones. ``on_disk``: the
    snapshot in an anonymous temporary file (`ParamSnapshot`), not in memory.
    """

    def __init__(self, named: Sequence[tuple[str, nn.Parameter]], limits: Mapping[str, float] | None = None,
                 snapshot_every: int = 1, on_disk: bool = False) -> None:
        self.named = list(named)
        self.limits = dict(limits or {})
        self.snapshot_every = snapshot_every
        self.snapshot = ParamSnapshot(self.named, on_disk=on_disk)
        self.snapshot_step = 0  # the step before which the snapshot's parameters were taken
        self.diverged_step: int | None = None
        self.reason: str | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    def trip(self, step: int, reason: str) -> bool:
        """Restore the snapshot and record the divergence; returns False (for ``return guard.trip``)."""
        self.snapshot.restore()
        self.diverged_step, self.reason = step, reason
        return False

    def check_loss(self, step: int, loss: float, parts: Mapping[str, float]) -> bool:
        """Called with the loss of the current parameters, before the update of ``step``."""
        if not math.isfinite(loss):
            return self.trip(step, f"non-finite loss ({loss})")
        for name, value in parts.items():
            if not math.isfinite(value):
                return self.trip(step, f"non-finite {name} ({value})")
            if name in self.limits and value > self.limits[name]:
                return self.trip(step, f"{name} {value:.3g} > {self.limits[name]:.3g} (collapse)")
        if (step - 1) % self.snapshot_every == 0 and step - 1 != self.snapshot_step:
            if not all_finite(self.named):
                return self.trip(step, "non-finite parameters")
            self.snapshot.refresh()
            self.snapshot_step = step - 1
        return True

    def check_grad(self, step: int, grad_norm: float) -> bool:
        if not math.isfinite(grad_norm):
            return self.trip(step, f"non-finite gradient norm ({grad_norm})")
        return True

    def check_params(self, step: int) -> bool:
        """Full parameter check (at the end of a run, or whenever the caller wants one)."""
        return True if all_finite(self.named) else self.trip(step, "non-finite parameters")

    def note(self) -> str | None:
        if not self.diverged:
            return None
        restored = ("the weights it started from" if self.snapshot_step <= 0
                    else f"the weights from after step {self.snapshot_step}")
        return f"diverged at step {self.diverged_step}: {self.reason}; restored {restored}"
