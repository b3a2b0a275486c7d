"""The retrain reference's measurements, kept on disk beside the world cache.

Every `compare` (and so every `loka demo`) on a world verifies its methods against the same
retrain model with the same settings, so the reference's measurements — MIA scores, truth
ratios, the attack curves, the probe curves — are the same every time: tens of seconds per
process on the default world, paid again by each parallel worker. They are stored once as JSON,
keyed by everything they depend on — the retrain and base weights' sha256, the world, the
verification settings and the source of the code that computes them — so a change to any of
these is a miss, never a stale hit. The file is our own output, read with a size cap and type
checks; a file that does not parse is ignored and rewritten.

Example:
    >>> ref = Measurements(load_model(art.retrain_dir, name="retrain"), data, settings)  # doctest: +SKIP
    >>> reuse_reference(ref, base, art)   # loads the stored values, or measures and stores them  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from loka.verify.measure import Measurements
from loka.verify.missing import Missing

MAX_BYTES = 64 * 1024 * 1024
FORMAT = "loka.verify.reference/2"
_CODE = ("loka/verify", "loka/evaluate.py", "attribution/data.py")
_PASSES = ("facts", "passages")  # forward passes: large, and cheap to redo — never stored


def _classes() -> dict[str, type]:
    """The dataclasses a stored value may hold (nothing else is ever built from the file)."""
    from loka.verify.measurements.mia import MiaResult, RocCurve
    from loka.verify.measurements.probes import ProbeCurves
    from loka.verify.measurements.relearn import RelearnResult

    return {c.__name__: c for c in (MiaResult, RocCurve, ProbeCurves, RelearnResult)}


def _code_hash() -> str:
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for part in _CODE:
        path = root / part
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def cache_path(reference: Measurements, artifacts: Any) -> Path:
    """Where the reference of this world, its models, settings and code is kept."""
    from loka.io.checkpoint import sha256_of_checkpoint

    key = json.dumps({"world": artifacts.spec.key(), "data": reference.data.name,
                      "retrain": sha256_of_checkpoint(artifacts.retrain_dir),
                      "base": sha256_of_checkpoint(artifacts.base_dir),
                      "settings": reference.settings.to_dict(), "code": _code_hash()},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(artifacts.root).parent / "verify-reference" / f"{Path(artifacts.root).name}-{digest}.json"


def encode(x: Any) -> Any:
    """A stored value as tagged JSON; ``TypeError`` for anything not meant to be stored."""
    if x is None or isinstance(x, bool | str):
        return {"v": x}
    if isinstance(x, Missing):
        return {"missing": x.reason}
    if isinstance(x, int | float | np.integer | np.floating):
        return {"num": float(x) if isinstance(x, float | np.floating) else int(x)}
    if isinstance(x, np.ndarray):
        return {"array": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, list | tuple):
        return {"list" if isinstance(x, list) else "tuple": [encode(v) for v in x]}
    if dataclasses.is_dataclass(x) and type(x).__name__ in _classes():
        return {"dataclass": type(x).__name__,
                "fields": {f.name: encode(getattr(x, f.name)) for f in dataclasses.fields(x)}}
    raise TypeError(f"cannot store {type(x).__name__}")


def decode(d: Any) -> Any:
    if not isinstance(d, dict) or len(d) not in (1, 2):
        raise ValueError("malformed entry")
    tag = next(iter(d))
    if tag == "v":
        return d["v"]
    if tag == "missing":
        return Missing(str(d["missing"]))
    if tag == "num":
        return d["num"]
    if tag == "array":
        return np.asarray(d["array"], dtype=np.dtype(str(d["dtype"])))
    if tag == "dict":
        return {decode(k): decode(v) for k, v in d["dict"]}
    if tag in ("list", "tuple"):
        items = [decode(v) for v in d[tag]]
        return items if tag == "list" else tuple(items)
    if tag == "dataclass":
        cls = _classes()[str(d["dataclass"])]
        return cls(**{k: decode(v) for k, v in d["fields"].items()})
    raise ValueError("malformed entry")


def _storable(key: Any) -> bool:
    return not (isinstance(key, tuple) and key and key[0] in _PASSES)


def reuse_reference(reference: Measurements, base: Measurements | None, artifacts: Any) -> bool:
    """Fill ``reference`` with its stored measurements (True), or measure everything now — the
    retrain model verified against itself — and store it for the next run (False)."""
    from loka.io.atomic import write_text
    from loka.verify.verifier import verify

    path = cache_path(reference, artifacts)
    try:
        if path.is_file() and path.stat().st_size <= MAX_BYTES:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("format") != FORMAT or not stored.get("entries"):
                raise ValueError("not a stored reference")
            reference._cache.update({decode(k): decode(v) for k, v in stored["entries"]})
            return True
    except (ValueError, KeyError, TypeError, AttributeError):
        pass  # unreadable: measure again and overwrite it
    verify(reference, reference.data, retrain=reference, base=base, settings=reference.settings)
    stored = []
    for key, value in reference._cache.items():
        if _storable(key):
            try:
                stored.append([encode(key), encode(value)])
            except TypeError:
                continue
    try:
        write_text(path, json.dumps({"format": FORMAT, "entries": stored}, allow_nan=True))
    except OSError:
        pass  # a read-only cache only costs the next run the measurement
    return False
