"""Resumed passes (attribution.resume) give the logits of full passes, on every architecture;
the patching built on them gives the loop's effects, and falls back when a shortcut fails."""

import warnings

import pytest
import torch

from attribution._common import group_by_hook
from attribution.ablation import Ablator
from attribution.components import Component, neuron_hook
from attribution.data import tokenize_facts
from attribution.metrics import item_metric, item_metric_at, read_positions
from attribution.patching import _Shortcuts, patch_effects, patch_effects_loop
from attribution.resume import CleanPass, neuron_delta, neuron_shortcut_holds, resume_logits
from tests.attribution.conftest import RETAIN, boot

COMPS = [Component(layer, k, i) for layer in range(2) for k, n in (("neuron", 3), ("head", 2)) for i in range(n)]
ARCHS = ["gpt_neox", "gpt2", "llama"]


def _tokens(bridge):
    return tokenize_facts(bridge.tokenizer, *RETAIN, max_len=bridge.cfg.n_ctx)


def _clean(bridge, batch, hooks=()):
    with torch.inference_mode():
        return CleanPass.capture(bridge, batch.input_ids, batch.attention_mask, list(hooks))


@pytest.fixture(scope="module")
def bridges(random_checkpoints):
    return {arch: boot(random_checkpoints[arch]) for arch in ARCHS}


def test_metric_at_read_positions_is_the_metric(bridge, retain, passages):
    for batch in (retain, passages):
        with torch.inference_mode():
            logits = bridge(batch.input_ids, attention_mask=batch.attention_mask)
        at = item_metric_at(logits[read_positions(batch)], batch)
        torch.testing.assert_close(at, item_metric(logits, batch), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("short_last", [True, False])
def test_resuming_unpatched_from_any_block_gives_the_full_pass_logits(bridges, arch, short_last):
    bridge = bridges[arch]
    batch = _tokens(bridge)
    clean, logits = _clean(bridge, batch)
    where = read_positions(batch)
    with torch.inference_mode():
        for start in range(clean.last + 2):
            hidden = clean.inputs[start] if start <= clean.last else clean.final
            got = resume_logits(bridge, clean, start, hidden.repeat(3, 1, 1), where.repeat(3, 1), 3,
                                short_last=short_last)
            torch.testing.assert_close(got, logits[where].repeat(3, 1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_shortcut_holds_on_the_supported_architectures(bridges, arch):
    """So that the tests of patch_effects on these models test the fast path, not the fallback."""
    bridge = bridges[arch]
    batch = _tokens(bridge)
    groups = group_by_hook(COMPS)
    clean, logits = _clean(bridge, batch, [g.hook for g in groups])
    with torch.inference_mode():
        found = _Shortcuts.check(bridge, clean, logits, read_positions(batch), groups)
    assert found == _Shortcuts(True, True, frozenset({0, 1}))


@pytest.mark.parametrize("arch", ARCHS)
def test_neuron_delta_is_the_hooked_ablation(bridges, arch):
    """Adding (new - old) * W_out[n] to the block's clean output == zeroing neuron n by a hook."""
    bridge = bridges[arch]
    batch = _tokens(bridge)
    hook, unit = neuron_hook(0), 5
    clean, _ = _clean(bridge, batch, [hook])

    def zero(act, hook):
        act = act.clone()
        act[..., unit] = 0
        return act

    with torch.inference_mode():
        assert neuron_shortcut_holds(bridge, clean, 0, hook)
        post = clean.acts[hook]
        delta = neuron_delta(post, torch.zeros_like(post), bridge.blocks[0].mlp.W_out, torch.tensor([unit]))[0]
        with bridge.hooks(fwd_hooks=[(hook, zero)]):
            hooked, _ = CleanPass.capture(bridge, batch.input_ids, batch.attention_mask, [])
    torch.testing.assert_close(clean.output_of(0) + delta, hooked.output_of(0), atol=1e-5, rtol=1e-4)


def test_patching_passages_equals_the_loop(bridge, passages, retain):
    ablator = Ablator.fit(bridge, retain, sorted({c.hook_name for c in COMPS}), "mean")
    fast, _ = patch_effects(bridge, passages, COMPS, ablator, rows=6, batch_size=1, progress=False)
    looped, _ = patch_effects_loop(bridge, passages, COMPS, ablator)
    torch.testing.assert_close(fast, looped, atol=1e-5, rtol=1e-4)


def test_full_passes_and_resumed_passes_agree(bridge, forget):
    resumed, _ = patch_effects(bridge, forget, COMPS, Ablator("zero"), progress=False)
    full, _ = patch_effects(bridge, forget, COMPS, Ablator("zero"), resume=False, progress=False)
    torch.testing.assert_close(resumed, full, atol=1e-5, rtol=1e-4)


def test_a_model_that_does_not_resume_falls_back_to_full_passes(bridge, forget, monkeypatch):
    monkeypatch.setattr(CleanPass, "resumes", lambda self, bridge, where, logits: False)
    with pytest.warns(UserWarning, match="full forward passes"):
        fallback, _ = patch_effects(bridge, forget, COMPS, Ablator("zero"), progress=False)
    looped, _ = patch_effects_loop(bridge, forget, COMPS, Ablator("zero"))
    torch.testing.assert_close(fallback, looped, atol=1e-5, rtol=1e-4)


def test_without_the_last_block_and_neuron_shortcuts_the_effects_are_the_same(bridge, forget, monkeypatch):
    fast, _ = patch_effects(bridge, forget, COMPS, Ablator("zero"), progress=False)
    monkeypatch.setattr(CleanPass, "last_block_holds", lambda self, bridge, where: False)
    monkeypatch.setattr("attribution.patching.neuron_shortcut_holds", lambda *args: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain, _ = patch_effects(bridge, forget, COMPS, Ablator("zero"), progress=False)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)


def test_resample_draws_survive_cutting_positions_and_reordering(bridge, retain):
    hook = neuron_hook(0)
    ablator = Ablator.fit(bridge, retain, [hook], "resample")
    act, keys = torch.zeros(3, 7, bridge.cfg.d_mlp), torch.tensor([11, 22, 33])
    full = ablator.replacement(hook, act, keys)
    torch.testing.assert_close(ablator.replacement(hook, act[:, :4], keys), full[:, :4])
    flipped = ablator.replacement(hook, act.flip(0), keys.flip(0))  # another order, same items
    torch.testing.assert_close(flipped.flip(0), full)

