"""Load any causal LM as a TransformerBridge: a local Hugging Face directory or a hub name.

>>> bridge = load_bridge("~/.cache/loka/default-…/base")      # doctest: +SKIP
>>> bridge = load_bridge("EleutherAI/pythia-160m")             # needs network   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from loka.errors import LokaError


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when available; asking for CUDA without one is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LokaError(f"--device {device} asked for, but torch sees no CUDA device; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise LokaError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or Path(name).exists()


def resolve_model_source(name_or_dir: str | Path) -> str:
    """A local checkpoint directory (checked) or a hub name (returned as is)."""
    text = str(name_or_dir)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LokaError(f"model path {path} is a file; pass the checkpoint directory")
        if not (path / "config.json").is_file():
            raise LokaError(f"model directory {path} has no config.json: not a Hugging Face checkpoint")
        return str(path)
    if _looks_like_path(text) or text.count("/") > 1:
        raise LokaError(f"model directory {path} does not exist")
    return text


def _hub_error(name: str, exc: Exception) -> LokaError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LokaError(
        f"could not load {name!r} from the Hugging Face hub (no network, or no such model): {first}. "
        "Download it where you have network (`huggingface-cli download NAME`) and pass the local directory."
    )


def load_bridge(name_or_dir: str | Path, device: str = "cpu") -> Any:
    """The model as a ``TransformerBridge`` (its HF model is ``bridge.original_model``)."""
    from transformer_lens.model_bridge import TransformerBridge

    source = resolve_model_source(name_or_dir)
    try:
        bridge = TransformerBridge.boot_transformers(source, device=resolve_device(device))
    except (OSError, ValueError, ConnectionError) as exc:
        if Path(source).exists():
            raise LokaError(f"could not load the checkpoint in {source}: {exc}") from None
        raise _hub_error(source, exc) from None
    bridge.eval()
    return bridge


def load_hf(name_or_dir: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """The plain Hugging Face ``(model, tokenizer)``, for training-style methods."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(name_or_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(source).to(resolve_device(device))
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, ConnectionError) as exc:
        if Path(source).exists():
            raise LokaError(f"could not load the checkpoint in {source}: {exc}") from None
        raise _hub_error(source, exc) from None
    model.eval()
    return model, tokenizer
