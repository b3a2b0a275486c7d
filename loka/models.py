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


def _hub_error(name: str, reason: str) -> LokaError:
    return LokaError(
        f"could not load {name!r} from the Hugging Face hub ({reason.strip().rstrip('.')}); "
        "download it where you have network (`hf download NAME --local-dir DIR`) and pass the directory"
    )


def _check_hub_reachable(name: str) -> None:
    """Fail in milliseconds, not after a minute of retries, when the hub's host does not resolve."""
    if os.environ.get("HF_HUB_OFFLINE") or any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy")):
        return  # offline mode fails fast by itself; behind a proxy, DNS is the proxy's business
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise _hub_error(name, f"no network: cannot resolve {host}") from None


def load_bridge(name_or_dir: str | Path, device: str = "cpu") -> Any:
    """The model as a ``TransformerBridge`` (its HF model is ``bridge.original_model``)."""
    source = resolve_model_source(name_or_dir)
    if not Path(source).exists():
        _check_hub_reachable(source)
    from transformer_lens.model_bridge import TransformerBridge
    try:
        bridge = TransformerBridge.boot_transformers(source, device=resolve_device(device))
    except (OSError, ValueError, ConnectionError) as exc:
        if Path(source).exists():
            raise LokaError(f"could not load the checkpoint in {source}: {exc}") from None
        raise _hub_error(source, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    bridge.eval()
    return bridge


def load_hf(name_or_dir: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """The plain Hugging Face ``(model, tokenizer)``, for training-style methods."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(name_or_dir)
    if not Path(source).exists():
        _check_hub_reachable(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(source).to(resolve_device(device))
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, ConnectionError) as exc:
        if Path(source).exists():
            raise LokaError(f"could not load the checkpoint in {source}: {exc}") from None
        raise _hub_error(source, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    model.eval()
    return model, tokenizer
