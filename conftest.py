"""Doctests in loka/ and attribution/ (``make test`` runs them): the names examples may use."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, torch=torch)
