"""The retrain reference's measurements, kept on disk beside the world cache.

Every `compare` (and so every `loka demo`) on a world verifies its methods against the same
retrain model with the same settings, so the reference's MIA scores, truth ratios and relearning
curve are the same every time: ~12 s per process on the default world, paid again by each
parallel worker. They are stored once as JSON, keyed by everything they depend on — the retrain
weights' sha256, the world, the verification settings and the source of the code that computes
them — so a change to any of these is a miss, never a stale hit. The file is our own output,
read with a size cap and type checks; a file that does not parse is ignored and rewritten.

Example:
    >>> ref = Measurements(load_model(art.retrain_dir, name="retrain"), data, settings)
    >>> reuse_reference(ref, art)     # loads the three values, or measures and stores them
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from loka.verify.measure import Measurements
from loka.verify.mia import RocCurve
from loka.verify.mia_eval import MiaResult
from loka.verify.missing import Missing
from loka.verify.relearn import RelearnResult

MAX_BYTES = 64 * 1024 * 1024
_CODE = ("loka/verify", "loka/evaluate.py", "attribution/data.py")


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
    """Where the reference of this world, retrain checkpoint, settings and code is kept."""
    from loka.io.checkpoint import sha256_of_checkpoint

    key = json.dumps({"world": artifacts.spec.key(), "data": reference.data.name,
                      "retrain": sha256_of_checkpoint(artifacts.retrain_dir),
                      "settings": reference.settings.to_dict(), "code": _code_hash()},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(artifacts.root).parent / "verify-reference" / f"{Path(artifacts.root).name}-{digest}.json"


def _value(x: Any) -> Any:
    if isinstance(x, Missing):
        return {"missing": x.reason}
    if isinstance(x, RocCurve):
        return {"roc": x.to_dict()}
    if isinstance(x, np.ndarray):
        return {"array": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, dict):
        return {"dict": {k: _value(v) for k, v in x.items()}}
    if isinstance(x, tuple):
        return {"tuple": [_value(v) for v in x]}
    if isinstance(x, float | int | np.floating):
        return {"float": float(x)}
    raise TypeError(f"cannot store {type(x).__name__}")


def _unvalue(d: Any) -> Any:
    if not isinstance(d, dict) or len(d) not in (1, 2):
        raise ValueError("malformed entry")
    if "missing" in d:
        return Missing(str(d["missing"]))
    if "roc" in d:
        r = d["roc"]
        return RocCurve(float(r["auc"]), np.asarray(r["fpr"], dtype=np.float64),
                        np.asarray(r["tpr"], dtype=np.float64))
    if "array" in d:
        return np.asarray(d["array"], dtype=np.dtype(str(d["dtype"])))
    if "dict" in d:
        return {str(k): _unvalue(v) for k, v in d["dict"].items()}
    if "tuple" in d:
        return tuple(_unvalue(v) for v in d["tuple"])
    if "float" in d:
        return float(d["float"])
    raise ValueError("malformed entry")


def _dump(reference: Measurements) -> dict[str, Any]:
    mia, truth, relearn = reference.mia(), reference.truth_ratios(), reference.relearn()
    return {
        "mia": _value(mia) if isinstance(mia, Missing) else
        {"dict": {"auc": _value(mia.auc), "roc": _value(mia.roc),
                  "by_source": _value(mia.by_source), "nll": _value(mia.nll)}},
        "truth": _value(truth),
        "relearn": _value(relearn) if isinstance(relearn, Missing) else
        {"relearn": {k: v for k, v in relearn.to_dict().items() if k not in ("best", "final")}},
    }


def _load(data: dict[str, Any]) -> dict[Any, Any]:
    mia = _unvalue(data["mia"])
    if not isinstance(mia, Missing):
        mia = MiaResult(mia["auc"], mia["roc"], mia["by_source"], mia["nll"])
    r = data["relearn"]
    relearn = RelearnResult(**r["relearn"]) if "relearn" in r else _unvalue(r)
    return {("mia", None): mia, "truth": _unvalue(data["truth"]), "relearn": relearn}


def reuse_reference(reference: Measurements, artifacts: Any) -> bool:
    """Fill ``reference`` with its stored MIA, truth-ratio and relearning results (True), or
    measure them now and store them for the next run (False)."""
    path = cache_path(reference, artifacts)
    try:
        if path.is_file() and path.stat().st_size <= MAX_BYTES:
            reference._cache.update(_load(json.loads(path.read_text(encoding="utf-8"))))
            return True
    except (ValueError, KeyError, TypeError, AttributeError):
        pass  # unreadable: measure again and overwrite it
    text = json.dumps(_dump(reference), allow_nan=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next run the measurement
    return False
