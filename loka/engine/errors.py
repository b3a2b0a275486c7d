"""Errors of the ablation engine; each is a `LokaError`, so the CLI prints it as one line."""

from __future__ import annotations

from loka.errors import LokaError


class PlanError(LokaError, ValueError):
    """An `AblationPlan` that is malformed, or does not fit the model it is applied to."""


class UnsupportedArchitectureError(LokaError):
    """A model whose weight layout the engine does not know."""


class UndoError(LokaError):
    """A journal that cannot be undone safely (already undone, or its parameters moved since)."""
