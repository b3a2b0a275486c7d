import json
import math

import numpy as np
import pytest

from loka.verify.measurements.grades import UnlearningEvaluation
from loka.verify.measurements.mia import mia_roc, privleak
from loka.verify.missing import Missing, jsonable


def test_jsonable_turns_missing_into_null_with_reason():
    result = {
        "mia_auc": {"loss": np.float64(0.75), "reference": Missing("no reference (retrain) model")},
        "privleak": privleak(0.75, None),
        "per_item": np.array([1.0, 2.0]),
        "n": np.int64(3),
        "grades": UnlearningEvaluation(0.08, 0.92, 0.53),
        "roc": mia_roc(np.array([1.0]), np.array([0.0])),
    }
    out = jsonable(result)
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN/Infinity anywhere
    assert out["mia_auc"] == {
        "loss": 0.75,
        "reference": None,
        "reference_reason": "no reference (retrain) model",
    }
    assert out["privleak"] is None and "retrain" in out["privleak_reason"]
    assert out["per_item"] == [1.0, 2.0] and out["n"] == 3
    assert out["grades"]["forget_quality"] == "excellent"
    assert out["roc"]["auc"] == 1.0


def test_jsonable_refuses_nan():
    with pytest.raises(ValueError, match="Missing"):
        jsonable({"x": [1.0, math.nan]})
