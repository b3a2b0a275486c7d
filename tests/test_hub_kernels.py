"""transformers >= 5.25 kernelizes every model it loads unless ``USE_HUB_KERNELS`` says no; importing
LOKA says no (module doc of `loka`), and leaves a user's own setting alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("given", "seen"), [(None, "0"), ("1", "1")])
def test_importing_loka_turns_hub_kernels_off_unless_the_user_chose(given, seen):
    env = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    if given is not None:
        env["USE_HUB_KERNELS"] = given
    out = subprocess.run([sys.executable, "-c", "import loka, os; print(os.environ['USE_HUB_KERNELS'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == seen


def test_a_checkpoint_is_checked_on_the_meta_device(random_checkpoints):
    """The check that failed under transformers 5.25 with hub kernels on: every tensor present."""
    from loka.io.models import check_weights_match

    assert check_weights_match(random_checkpoints["llama"]) > 0
