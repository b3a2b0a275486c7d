"""Load a causal LM — a local Hugging Face directory or a hub name — checked before it loads.

A local checkpoint is checked first, in milliseconds, without reading its weights: a
``config.json`` of a supported architecture (`SUPPORTED_ARCHITECTURES`) that transformers can
build, weight files whose safetensors headers parse and hold every tensor the config needs in
its shape, tokenizer files that parse, and a size that fits in memory. A loaded model must be
finite (weights and outputs). Each problem is one line saying what to do, never a traceback
from deep inside transformers.

>>> bridge = load_bridge("~/.cache/loka/default-…/base")      # doctest: +SKIP
>>> bridge = load_bridge("EleutherAI/pythia-160m")             # needs network   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from loka.errors import LokaError
from loka.io.placement import Placement

# The architectures whose weight layout the ablation engine knows (`loka.engine.adapters`).
SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("gpt_neox", "gpt2", "llama")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


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


def resolve_model_source(name_or_dir: str | Path, *, check_memory: bool = True) -> str:
    """A local checkpoint directory (checked, `check_checkpoint`) or a hub name (as is)."""
    text = str(name_or_dir)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LokaError(f"model path {path} is a file; pass the checkpoint directory")
        check_checkpoint(path, check_memory=check_memory)
        return str(path)
    local_parent = path.parent != Path(".") and path.parent.is_dir()
    if _looks_like_path(text) or text.count("/") > 1 or text.startswith(("./", "../")) or local_parent:
        raise LokaError(f"model directory {path} does not exist")
    return text


def read_config(path: Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict; one-line errors when absent or malformed."""
    config = path / "config.json"
    if not config.is_file():
        raise LokaError(f"model directory {path} has no config.json: not a Hugging Face checkpoint")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LokaError(f"{config} is not valid JSON: the checkpoint is damaged") from None
    if not isinstance(data, dict):
        raise LokaError(f"{config} is not a JSON object: the checkpoint is damaged")
    return data


_SIZES = ("num_hidden_layers", "n_layer", "hidden_size", "n_embd", "num_attention_heads", "n_head",
          "intermediate_size", "n_inner", "vocab_size", "max_position_embeddings", "n_positions")


def check_architecture(config: dict[str, Any], where: str) -> str:
    """The config's ``model_type``, or `LokaError` when LOKA cannot edit that architecture or
    a size in it is not a positive integer."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise LokaError(f"{where}: architecture {model_type!r} is not supported (LOKA edits causal "
                        f"LMs of type {', '.join(SUPPORTED_ARCHITECTURES)})")
    for key in _SIZES:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise LokaError(f"{where}/config.json: {key} must be a positive integer, got {value!r}; "
                            "the checkpoint is damaged")
    return str(model_type)


def _check_weights(path: Path) -> None:
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        others = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        hint = (f" ({', '.join(others)} found: LOKA never unpickles weights; convert them with "
                "save_pretrained(..., safe_serialization=True))") if others else ""
        raise LokaError(f"model directory {path} has no .safetensors weights{hint}")
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as st:
                st.keys()
        except Exception as exc:  # safetensors raises its own error types for bad headers
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise LokaError(f"{f} is not a valid safetensors file (empty, truncated or corrupt: "
                            f"{reason}); restore or re-save the checkpoint") from None


def meta_model(config: dict[str, Any], where: str) -> Any:
    """The model ``config`` describes, on the meta device (no memory); `LokaError` when
    transformers cannot build it (``num_hidden_layers: -1``, a string for a number, ...)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        cfg = AutoConfig.for_model(**config)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg)
    except Exception as exc:  # transformers raises TypeError, ValueError, its own validation errors
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise LokaError(f"{where}/config.json describes no model transformers can build ({reason}); "
                        "the checkpoint is damaged") from None


def estimated_bytes(config: dict[str, Any]) -> int | None:
    """Bytes the model's float32 parameters take, from its config alone (no weights read)."""
    try:
        model = meta_model(config, "")
    except LokaError:
        return None
    return 4 * sum(p.numel() for p in model.parameters())


def check_weights_match(path: Path) -> int:
    """Every tensor the config's model needs is in the weight files, in its shape (checked on
    the meta device: no weight is read); returns the parameter count. A missing tensor would be
    silently random-initialised, a wrong shape fail deep inside loading."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its load report is ours to phrase
    hf_logging.disable_progress_bar()
    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            path, device_map="meta", output_loading_info=True, ignore_mismatched_sizes=True)
        model, info = loaded
    except Exception as exc:  # transformers raises many types for configs it cannot build
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise LokaError(f"{path}: transformers cannot build the model its config.json describes "
                        f"({reason}); the checkpoint is damaged") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    missing, mismatched = sorted(info["missing_keys"]), sorted(map(str, info["mismatched_keys"]))
    if missing:
        raise LokaError(f"{path}: the weights lack {len(missing)} tensor(s) config.json needs "
                        f"(e.g. {missing[0]!r}); the checkpoint is damaged or its weights belong to another model")
    if mismatched:
        raise LokaError(f"{path}: {len(mismatched)} tensor(s) have another shape than config.json needs "
                        f"({mismatched[0][:120]}); the weights belong to another model")
    return sum(p.numel() for p in model.parameters())


def _check_tokenizer(path: Path) -> None:
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise LokaError(f"model directory {path} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}); "
                        "save the tokenizer with the model (tokenizer.save_pretrained(dir))")
    for name in (f for f in _TOKENIZER_FILES if f.endswith(".json")):
        f = path / name
        try:
            if f.is_file():
                json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise LokaError(f"{f} is not valid JSON: the tokenizer is damaged; re-save it "
                            "(tokenizer.save_pretrained(dir))") from None


def saved_prefix(path: str | Path) -> str | None:
    """The prefix a checkpoint directory's tokenizer was saved with (`attribution.data.set_prefix`),
    or None (none recorded, not a directory, or an unreadable config)."""
    from attribution.data import PREFIX_KEY

    f = Path(path).expanduser() / "tokenizer_config.json"
    try:
        value = json.loads(f.read_text(encoding="utf-8")).get(PREFIX_KEY)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_finite(model: Any, tokenizer: Any, where: str) -> None:
    """Refuse a loaded model whose weights, or outputs on a short text, are NaN or infinite:
    a diverged model, on which every measurement would read as perfect erasure."""
    from loka.evaluate import FINITE_CHECK_TEXTS, outputs_finite
    from loka.io.checkpoint import non_finite_weights

    bad = non_finite_weights(model)
    if bad:
        raise LokaError(f"{where}: {bad:,} weights are NaN or infinite — a diverged model, not a "
                        "usable one; nothing can be measured or edited on it")
    if not outputs_finite(model, tokenizer, FINITE_CHECK_TEXTS):
        raise LokaError(f"{where}: the weights are finite but the outputs are not (they overflow) — "
                        "a diverged model; nothing can be measured or edited on it")


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_bytes_fit(need: int | None, where: str, factor: float = 1.0) -> None:
    """Refuse, before loading, a model whose float32 weights (``need`` bytes, x ``factor``)
    exceed free memory."""
    free = _available_bytes()
    if need is not None and free is not None and need * factor > free:
        raise LokaError(f"{where}: the model needs ~{need * factor / 2**30:.1f} GiB as float32 but "
                        f"only {free / 2**30:.1f} GiB of memory is free; use a machine with more "
                        "memory or --device-map to offload it")


def check_fits_memory(config: dict[str, Any], where: str, factor: float = 1.0,
                      need: int | None = None) -> None:
    """Refuse, before loading, a model whose float32 weights (x ``factor``) exceed free memory."""
    check_bytes_fit(need or estimated_bytes(config), where, factor)


def check_checkpoint(path: Path, check_memory: bool = True) -> dict[str, Any]:
    """Everything checkable about a local checkpoint before loading it; returns its config."""
    config = read_config(path)
    check_architecture(config, str(path))
    _check_weights(path)
    _check_tokenizer(path)
    params = check_weights_match(path)
    if check_memory:
        check_fits_memory(config, str(path), need=4 * params)
    return config


def _hub_error(name: str, reason: str) -> LokaError:
    return LokaError(
        f"could not load {name!r} from the Hugging Face hub ({reason.strip().rstrip('.')}); "
        "download it where you have network (`hf download NAME --local-dir DIR`) and pass the directory"
    )


def _check_hub_reachable(name: str) -> None:
    """Fail in milliseconds, not after a minute of retries, when the hub's host does not resolve."""
    from huggingface_hub import constants

    # The hub library's offline mode fails fast by itself; it reads HF_HUB_OFFLINE once, when it
    # is imported, so the variable set later (in a notebook) is not offline mode: check DNS then.
    # Behind a proxy, DNS is the proxy's business.
    if constants.HF_HUB_OFFLINE or any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy")):
        return
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise _hub_error(name, f"no network: cannot resolve {host}") from None


def _resolve_for_loading(name_or_dir: str | Path, placement: Placement | None) -> str:
    """Checked source (memory is not checked for a dispatched model: offloading is the point)."""
    source = resolve_model_source(name_or_dir, check_memory=placement is None or not placement.dispatched)
    if not Path(source).exists():
        _check_hub_reachable(source)
    return source


def _load_error(source: str, exc: Exception) -> LokaError:
    if Path(source).exists():
        return LokaError(f"could not load the checkpoint in {source}: {' '.join(str(exc).split())[:300]}")
    return _hub_error(source, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def load_bridge(name_or_dir: str | Path, device: str = "cpu", placement: Placement | None = None) -> Any:
    """The model as a ``TransformerBridge`` (its HF model is ``bridge.original_model``);
    ``placement`` dispatches it across devices (accelerate) instead of putting it on ``device``."""
    source = _resolve_for_loading(name_or_dir, placement)
    from transformer_lens.model_bridge import TransformerBridge

    where = placement.hf_kwargs() if placement is not None and placement.dispatched \
        else {"device": resolve_device(placement.device if placement else device)}
    try:
        bridge = TransformerBridge.boot_transformers(source, **where)
    except (OSError, ValueError, ConnectionError) as exc:
        raise _load_error(source, exc) from None
    original: Any = bridge.original_model
    check_architecture(original.config.to_dict(), source)
    bridge.eval()
    check_finite(bridge.original_model, bridge.tokenizer, source)
    return bridge


def load_hf(name_or_dir: str | Path, device: str = "cpu", placement: Placement | None = None) -> tuple[Any, Any]:
    """The plain Hugging Face ``(model, tokenizer)``, for training-style methods; ``placement``
    dispatches the model across devices (accelerate) instead of putting it on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _resolve_for_loading(name_or_dir, placement)
    try:
        if placement is not None and placement.dispatched:
            model = AutoModelForCausalLM.from_pretrained(source, **placement.hf_kwargs())
        else:
            target = resolve_device(placement.device if placement else device)
            model = AutoModelForCausalLM.from_pretrained(source).to(target)  # type: ignore[arg-type]
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, ConnectionError) as exc:
        raise _load_error(source, exc) from None
    check_architecture(model.config.to_dict(), source)
    model.eval()
    check_finite(model, tokenizer, source)
    return model, tokenizer
