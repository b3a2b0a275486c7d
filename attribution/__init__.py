"""Rank the MLP neurons and attention heads that carry a piece of knowledge.

Depends on TransformerLens and torch only; never imports ``loka``.

Example:
    >>> forget = tokenize_facts(bridge.tokenizer, prompts, answers, max_len=bridge.cfg.n_ctx)  # doctest: +SKIP
    >>> ranking = rank(bridge, forget, retain, method="patch", ablation="mean")  # doctest: +SKIP
    >>> ranking.top(10, kinds=("head",))  # doctest: +SKIP
"""

from attribution._common import input_device
from attribution.ablation import Ablator
from attribution.components import (
    Component,
    ComponentKind,
    ModelShape,
    parse_kinds,
    validate_components,
)
from attribution.data import FactBatch, PassageBatch, data_hash, tokenize_facts, tokenize_passages
from attribution.metrics import answer_logprob, first_token_logprob, item_metric, passage_loglik
from attribution.rank import rank
from attribution.ranking import Ranking
from attribution.registry import METHODS, MethodScores, get_method, register

__all__ = [
    "METHODS",
    "Ablator",
    "Component",
    "ComponentKind",
    "FactBatch",
    "MethodScores",
    "ModelShape",
    "PassageBatch",
    "Ranking",
    "answer_logprob",
    "data_hash",
    "first_token_logprob",
    "get_method",
    "input_device",
    "item_metric",
    "parse_kinds",
    "passage_loglik",
    "rank",
    "register",
    "tokenize_facts",
    "tokenize_passages",
    "validate_components",
]
