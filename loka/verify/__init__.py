"""The verifier: measure what an edited model forgot, what it kept, and what still leaks.

`verifier.verify` runs every registered measurement (`registry`; one file each in
`measurements`: accuracy, other question forms, the never-known floor, membership inference, the seed's grades, truth
ratio, probes, logit lens, relearning, benign relearning, in-context relearning, quantization,
unlearning depth, extraction, perplexity, damage, cost) on one model against the retrain gold
standard and returns a `VerifyReport`. What they share: `data` (what to measure on), `loaded`
(the model under test), `forward` (one cached pass per fact set), `measure` (the settings and the
per-model cache), `logprobs` and `missing` (the ``Missing(reason)`` convention), and
`reference_cache` (the retrain model's measurements, stored beside the world).
"""
