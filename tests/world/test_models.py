import torch
from transformers import AutoModelForCausalLM

from loka.io.models import load_bridge
from loka.world.build import model_accuracies


def test_tiny_base_knows_the_forget_set_and_retrain_does_not(tiny_world):
    info = tiny_world.info()
    base, retrain = info["base"], info["retrain"]
    assert base["forget_accuracy"] > retrain["forget_accuracy"] + 0.3
    assert base["retain_accuracy"] > 0.5
    # retrain never saw the forget people: it knows them no better than never-seen holdout people
    assert abs(retrain["forget_accuracy"] - retrain["holdout_accuracy"]) < 0.15


def test_recorded_accuracy_matches_a_fresh_measurement(tiny_world):
    model = AutoModelForCausalLM.from_pretrained(tiny_world.base_dir)
    fresh = model_accuracies(model, tiny_world.tokenizer(), tiny_world.world)
    assert fresh == tiny_world.info()["base"]


def test_saved_model_reloads_through_the_bridge_with_identical_logits(tiny_world):
    hf = AutoModelForCausalLM.from_pretrained(tiny_world.base_dir).eval()
    bridge = load_bridge(tiny_world.base_dir)
    ids = tiny_world.tokenizer()(["Q: Where was", "The birthplace of"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = hf(**ids).logits
        got = bridge(ids["input_ids"], attention_mask=ids["attention_mask"])
    mask = ids["attention_mask"].bool()
    assert (got[mask] - expected[mask]).abs().max() < 1e-5
