"""Handing freed memory back to the operating system between the phases of a long run.

A large pass (attribution's graph, a verifier measurement over a 49k-token vocabulary) frees
gigabytes that glibc keeps in its heap, fragmented: the process's RSS stays at that peak and the
next phase grows it further (on SmolLM2-135M, loka-ft's ranking left 3.1 GB resident of which
0.5 GB were live tensors). `release_freed_memory` collects garbage and trims the heap.

Example:
    >>> release_freed_memory()  # after the bridge and its graph are dropped
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator
from functools import partial
from typing import Any


def release_freed_memory() -> None:
    """Collect garbage and return the heap's free pages to the OS (glibc's ``malloc_trim``).

    A no-op beyond ``gc.collect()`` where the C library has no ``malloc_trim`` (macOS, musl).
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def non_finite_entries(tensor: Any, chunk: int = 1 << 22) -> int:
    """NaN or infinite entries of ``tensor``, counted 4M entries at a time: ``isfinite`` of a
    whole tensor makes float-sized temporaries (SmolLM2's 28M-entry embedding: ~0.23 GB at once)."""
    import torch

    with torch.no_grad():
        flat = tensor.detach().reshape(-1)
        return sum(int((~torch.isfinite(part)).sum()) for part in flat.split(chunk))


@contextlib.contextmanager
def activations_recomputed(model: Any) -> Iterator[None]:
    """Activation checkpointing on a HF ``model`` inside the block (where it supports it).

    Training keeps each layer's input only and recomputes the layer in the backward pass: the
    same operations on the same values, so the same gradients, for about one more forward pass
    and a graph of layers x d_model per token instead of every intermediate (on SmolLM2-135M,
    ~2 MB per token). Off again (if it was off) when the block ends.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        yield
        return
    enable = getattr(model, "activation_checkpointing_enable", None)
    disable = getattr(model, "activation_checkpointing_disable", None)
    was_on = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    if enable is None or disable is None:  # transformers < 5
        enable = partial(model.gradient_checkpointing_enable, gradient_checkpointing_kwargs={"use_reentrant": False})
        disable = model.gradient_checkpointing_disable
    if not was_on:
        enable()
    try:
        yield
    finally:
        if not was_on:
            disable()


@contextlib.contextmanager
def activations_kept(model: Any) -> Iterator[None]:
    """Activation checkpointing paused inside the block: every layer that recomputes its
    activations in the backward pass keeps them instead (its flag restored on exit). For a forward
    whose hooks read state that a recomputation in the backward pass would no longer see
    (`SliceDeltas.routed`)."""
    paused = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for m in paused:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in paused:
            m.gradient_checkpointing = True


#: Parameters above which LOKA treats a model as large: its optimisation recomputes activations
#: and keeps its starting weights on disk (a 135M Llama's graph through 30 layers and a 49k-token
#: vocabulary is gigabytes; the worlds' 0.3-3M models stay as they are, bit for bit, at full speed).
LARGE_ABOVE = 20_000_000


def is_large(model_or_count: Any, above: int | None = None) -> bool:
    """Whether a model (or a parameter count) has more than ``above`` parameters (default
    `LARGE_ABOVE`, read at the call)."""
    count = model_or_count if isinstance(model_or_count, int) else sum(p.numel() for p in model_or_count.parameters())
    return count > (LARGE_ABOVE if above is None else above)


#: Whether a large model's AdamW runs torch's fused kernel (`adamw`); False gives the default
#: loop, bit for bit as before (tests compare recomputation alone with it).
FUSED_ADAMW = True


def adamw(params: Any, *, large: bool, **options: Any) -> Any:
    """``torch.optim.AdamW(params, **options)``; for a large model (`is_large`) torch's fused
    kernel: one pass over each parameter instead of a dozen (SmolLM2's 135M parameters on 2
    cores: 0.10-0.13 s a step instead of 0.65-0.9 s, `python -m bench.optimizer`; the same update
    up to float rounding, ~1e-7).
    The worlds keep the default loop, bit for bit. Parameters torch cannot fuse (not floating
    point, or not on a CPU or CUDA device) keep the default too."""
    import torch

    params = list(params)
    if FUSED_ADAMW and large:
        tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
        if all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors):
            options["fused"] = True
    return torch.optim.AdamW(params, **options)


def large_model_recomputed(model: Any) -> contextlib.AbstractContextManager[None]:
    """`activations_recomputed` for a large model (`is_large`); otherwise nothing."""
    return activations_recomputed(model) if is_large(model) else contextlib.nullcontext()


def dropout_free(model: Any) -> bool:
    """No dropout anywhere in ``model`` (modules or config rates): training mode then computes
    exactly what evaluation mode does."""
    from torch import nn

    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return False
    config = getattr(model, "config", None)
    settings = config.to_dict() if config is not None and hasattr(config, "to_dict") else {}
    return not any(("dropout" in k or "pdrop" in k) and isinstance(v, int | float) and v > 0
                   for k, v in settings.items())


@contextlib.contextmanager
def large_model_recomputed_as_eval(model: Any) -> Iterator[None]:
    """`large_model_recomputed` for a model that must compute as in evaluation mode (an attack's
    copy). transformers recomputes only in training mode, so a large model goes to training mode
    inside the block only when it has no dropout (`dropout_free`: then the same values), and back
    to evaluation mode after; otherwise nothing changes."""
    if not (is_large(model) and dropout_free(model)):
        yield
        return
    model.train()
    try:
        with activations_recomputed(model):
            yield
    finally:
        model.eval()
