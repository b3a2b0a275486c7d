"""Checks and fixtures shared by the report and demo tests: strict JSON, PNG validity, fake results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict_json(path: Path) -> Any:
    """``json.loads`` that fails on NaN / Infinity instead of accepting them."""
    def refuse(token: str) -> Any:
        raise ValueError(f"{path}: non-finite JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def assert_valid_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()  # checks chunks and CRCs
    with Image.open(path) as image:
        assert image.size[0] > 100 and image.size[1] > 100, f"{path}: {image.size}"


def assert_self_contained(html: str) -> None:
    """Every image embedded as a data URI; nothing fetched from anywhere."""
    sources = re.findall(r"""\bsrc\s*=\s*["']?([^"' >]+)""", html)
    assert sources, "the report embeds no images"
    assert all(s.startswith("data:image/png;base64,") for s in sources), sources[:3]
    assert "<script" not in html and "<link" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html


def _curves(auc: float, probe: float, relearn: float) -> dict[str, Any]:
    return {
        "mia_roc": {"loss": {"auc": auc, "fpr": [0.0, 0.5, 1.0], "tpr": [0.0, auc, 1.0]}},
        "probe": {"forget": {"birth_city": [0.3, probe], "occupation": [0.25, probe]},
                  "holdout": {"birth_city": [0.2, 0.25], "occupation": [0.2, 0.2]}},
        "relearn": {"model": {"steps": [0, 5, 10], "recall": [0.0, relearn / 2, relearn]},
                    "retrain": {"steps": [0, 5, 10], "recall": [0.0, 0.05, 0.1]}},
    }


def _entry(forget: float, retain: float, auc: float, probe: float, relearn: float,
           **extra: Any) -> dict[str, Any]:
    return {"forget_accuracy": forget, "retain_accuracy": retain, "holdout_accuracy": 0.05,
            "heldout_template_forget_accuracy": forget, "mia_auc": {"loss": auc},
            "privleak": 10.0, "forget_quality": 0.5, "probe_accuracy": probe,
            "probe_holdout_accuracy": 0.25, "relearn_accuracy": relearn,
            "relearn_retrain_accuracy": 0.1, "extraction": {"exact_match_rate": 0.1},
            "perplexity": 5.0, "seconds": 3.0, "params_changed": 100, "diverged": False,
            "grades": {"forget_quality": "good", "privacy_leakage": "moderate"},
            "curves": _curves(auc, probe, relearn)} | extra


def fake_results() -> dict[str, Any]:
    """A small results.json with the shape `compare` writes: references, a good and a fake method."""
    return {
        "world": {"preset": "tiny", "seed": 0, "forget_people": 8, "retain_people": 36,
                  "holdout_people": 16, "params": 123456},
        "methods": {
            "base": _entry(0.95, 0.9, 0.8, 0.9, 0.9),
            "retrain": _entry(0.05, 0.9, 0.5, 0.25, 0.1),
            "loka-ft": _entry(0.05, 0.88, 0.55, 0.3, 0.15),
            "output_suppression": _entry(0.0, 0.9, 0.8, 0.9, 0.9, refusal_filter=True),
            "broken": {"error": "ValueError: <boom>", "forget_accuracy": None},
        },
        "compare_seconds": 12.0, "machine": {"cpus": 2, "platform": "test"},
    }
