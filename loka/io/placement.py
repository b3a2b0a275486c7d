"""Where a model's weights live: one device, or dispatched across devices by Hugging Face accelerate.

A model too large for one device is loaded with accelerate's big-model dispatch — a device map
(``auto``, ``balanced``, ``balanced_low_0``, ``sequential`` or an explicit ``{module: device}``
JSON file), per-device memory limits and a folder for what is offloaded to disk — which
transformers and TransformerLens' bridge accept directly; LOKA has no sharding of its own. The
accelerate hooks move every activation to the device of the layer that reads it.

`plan_placement` answers, without loading a weight (the model is built on the ``meta`` device),
where each module of a configuration would go and how many bytes each device would hold.

Example:
    >>> Placement.parse(device_map="auto", max_memory="0=10GiB,cpu=2GiB").hf_kwargs()["max_memory"]
    {0: '10GiB', 'cpu': '2GiB'}
    >>> parse_memory("0=10GiB,cpu=30GiB")
    {0: '10GiB', 'cpu': '30GiB'}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loka.errors import LokaError

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def parse_memory(text: str | None) -> dict[str | int, str] | None:
    """``"0=10GiB,cpu=30GiB"`` -> ``{0: "10GiB", "cpu": "30GiB"}`` (accelerate's ``max_memory``)."""
    if text is None:
        return None
    out: dict[str | int, str] = {}
    for item in text.split(","):
        device, sep, size = item.strip().partition("=")
        device, size = device.strip(), size.strip()
        if not sep or not device or not _SIZE.match(size):
            raise LokaError(f"--max-memory expects DEVICE=SIZE[,DEVICE=SIZE...] with sizes like 2GiB "
                            f"or 500MB, got {item.strip()!r}")
        if device.isdigit():
            out[int(device)] = size
        elif device in ("cpu", "disk", "mps"):
            out[device] = size
        else:
            raise LokaError(f"--max-memory: unknown device {device!r}; use a GPU index (0, 1, ...), cpu or disk")
    return out


@dataclass(frozen=True)
class Placement:
    """One device, or an accelerate device map with its memory limits and offload folder."""

    device: str = "cpu"
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[str | int, str] | None = None
    offload_folder: str | None = None

    @property
    def dispatched(self) -> bool:
        return self.device_map is not None

    @classmethod
    def parse(cls, device: str = "cpu", device_map: str | None = None, max_memory: str | None = None,
              offload_folder: str | None = None) -> Placement:
        """From command-line text (every problem a one-line error, before any model loads)."""
        memory = parse_memory(max_memory)
        if device_map is None:
            if memory is not None or offload_folder is not None:
                raise LokaError("--max-memory and --offload-folder need --device-map (auto, balanced, ...)")
            return cls(device=device)
        mapping: str | dict[str, Any] = device_map
        if device_map not in STRATEGIES:
            path = Path(device_map).expanduser()
            if not path.is_file():
                raise LokaError(f"--device-map must be one of {', '.join(STRATEGIES)} or a JSON file "
                                f"mapping modules to devices; {device_map!r} is neither")
            try:
                mapping = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise LokaError(f"--device-map {path}: not valid JSON") from None
            if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                raise LokaError(f"--device-map {path}: expected a JSON object {{module: device}}")
        if memory is not None and "disk" in memory and offload_folder is None:
            raise LokaError("--max-memory names disk: give --offload-folder DIR for the offloaded weights")
        return cls(device="cpu", device_map=mapping, max_memory=memory, offload_folder=offload_folder)

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` / ``TransformerBridge.boot_transformers``."""
        if not self.dispatched:
            return {}
        out: dict[str, Any] = {"device_map": self.device_map}
        if self.max_memory is not None:
            out["max_memory"] = {k: v for k, v in self.max_memory.items() if k != "disk"}
        if self.offload_folder is not None:
            out["offload_folder"] = str(Path(self.offload_folder).expanduser())
        return out


def plan_placement(config: Any, max_memory: dict[str | int, str] | None = None,
                   strategy: str = "auto", dtype: Any = None) -> dict[str, Any]:
    """Where each module of ``config``'s model would go, and the bytes per device (no weights).

    ``max_memory`` as accelerate takes it (``{0: "10GiB", "cpu": "30GiB"}``); what fits nowhere
    goes to ``disk``. Returns ``device_map``, ``bytes_by_device``, ``total_bytes``, ``n_params``.
    """
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import compute_module_sizes, get_balanced_memory, infer_auto_device_map
    from transformers import AutoModelForCausalLM

    dtype = dtype or torch.float32
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    no_split = getattr(model, "_no_split_modules", None) or []
    memory = {k: v for k, v in (max_memory or {}).items() if k != "disk"} or None
    if strategy in ("balanced", "balanced_low_0") and memory is not None:
        memory = get_balanced_memory(model, max_memory=memory, no_split_module_classes=no_split,
                                     dtype=dtype, low_zero=strategy == "balanced_low_0")
    device_map = infer_auto_device_map(model, max_memory=memory, no_split_module_classes=no_split, dtype=dtype)
    sizes = compute_module_sizes(model, dtype=dtype)
    by_device: dict[str, int] = {}
    for module, device in device_map.items():
        by_device[str(device)] = by_device.get(str(device), 0) + int(sizes[module])
    return {"device_map": {k: str(v) for k, v in device_map.items()}, "bytes_by_device": by_device,
            "total_bytes": int(sizes[""]), "n_params": sum(p.numel() for p in model.parameters())}
