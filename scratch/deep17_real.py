"""Sweep harness for loka-deep's lookup fallback on SmolLM2 (issue 17, branch deep17).

    python scratch/deep17_real.py '{"lookup_layer": 8}' '{"method": "loka-ft"}' [--base] [--full]

One process, the model loaded once; each variant runs on a fresh copy. Prints per variant one JSON
line: the method's notes, every fact set's first-token accuracy (forget train/heldout/reverse;
retain the method sees; retain-eval train/heldout split into neighbours and general knowledge),
perplexity and (--full) the relearning attack's best recall and the LOSS MIA AUC (forget vs
holdout facts), with the verifier's own measurements and `make demo-real`'s settings.
"""
import copy
import json
import sys
import time

import torch

sys.path.insert(0, ".")
from bench.real import demo_verify_settings, request  # noqa: E402
from loka.evaluate import first_token_hits, logits_at, prompt_ends  # noqa: E402
from loka.io.models import load_hf  # noqa: E402
from loka.methods import unlearn  # noqa: E402
from attribution.data import tokenize_facts  # noqa: E402

torch.set_num_threads(2)
GENERAL = {"Italy", "Germany", "China", "United Kingdom", "Australia", "Portugal", "Sweden", "William Shakespeare",
           "Neil Armstrong", "gold", "France", "Japan", "Russia", "Canada", "Greece", "Ireland", "Poland",
           "Albert Einstein", "Leonardo da Vinci", "Alexander Graham Bell"}
HOMONYM = {"Remus (Rome)", "Ronald Reagan", "Sirius (star)", "The Hobbit", "Ron Howard", "The Lord of the Rings",
           "Harry Houdini"}


def acc(model, tok, facts):
    if not facts:
        return None, []
    b = tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts])
    with torch.no_grad():
        hits = first_token_hits(logits_at(model, b, prompt_ends(b)), b.answer_ids[:, 0])
    return round(float(hits.float().mean()), 4), [f.subject for f, h in zip(facts, hits.tolist()) if not h]


def answer_logp(model, tok, facts):
    """Mean log-prob of the first answer token (a continuous score on the facts a method sees)."""
    b = tokenize_facts(tok, [f.prompt for f in facts], [f.answer for f in facts])
    with torch.no_grad():
        logp = logits_at(model, b, prompt_ends(b)).float().log_softmax(-1)
    return round(float(logp.gather(-1, b.answer_ids[:, :1]).mean()), 4)


def table(model, tok, data, task, relearn=False):
    from loka.verify.loaded import load_model
    from loka.verify.measure import Measurements
    from loka.verify.measurements.perplexity import perplexity_of
    from loka.verify.measurements.relearn import relearn_of
    f = data.facts
    row, lost = {}, {}
    for key, facts in (("forget_train", f[("forget", "train")]), ("forget_heldout", f[("forget", "heldout")]),
                       ("forget_reverse", f[("forget", "reverse")]), ("retain_seen", task.retain)):
        row[key], lost[key] = acc(model, tok, list(facts))
    row["forget_train_logp"] = answer_logp(model, tok, list(f[("forget", "train")]))
    row["retain_seen_logp"] = answer_logp(model, tok, list(task.retain))
    ev = list(f[("retain_eval", "train")]) + list(f.get(("retain_eval", "heldout"), ()))
    groups = {"eval_neigh_train": [x for x in f[("retain_eval", "train")] if x.subject not in GENERAL | HOMONYM],
              "eval_neigh_q": list(f.get(("retain_eval", "heldout"), ())),
              "eval_homonym": [x for x in ev if x.subject in HOMONYM],
              "eval_general": [x for x in ev if x.subject in GENERAL],
              "eval_train_all": list(f[("retain_eval", "train")])}
    for key, facts in groups.items():
        row[key], lost[key] = acc(model, tok, facts)
    me = Measurements(load_model((model, tok), name="m"), data, demo_verify_settings())
    row["ppl"] = round(float(perplexity_of(me)), 2)
    if relearn:
        from loka.verify.measurements.mia import mia_of
        row["relearn"] = relearn_of(me).best
        row["mia_auc_loss"] = round(float(mia_of(me).auc["loss"]), 4)
    row["lost"] = {k: v for k, v in lost.items() if v and not k.startswith("forget")}
    return row


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data, task, model = request()
    hf, tok = load_hf(model)
    t = time.time()
    if "--base" in sys.argv:
        print(json.dumps({"variant": "base", **table(hf, tok, data, task, relearn="--full" in sys.argv)}), flush=True)
    for a in args:
        m = copy.deepcopy(hf)
        t = time.time()
        settings = json.loads(a)
        res = unlearn((m, tok), task, settings.pop("method", "loka-deep"), progress=False, **settings)
        sec = time.time() - t
        log = [e for e in res.log if e.get("stage") == "lookup_misdirection"]
        print(json.dumps({"variant": a, "s": round(sec, 1), "changed": res.params_changed, "stage": log,
                          **table(m, tok, data, task, relearn="--full" in sys.argv)}), flush=True)
        del m


if __name__ == "__main__":
    main()
