"""The verifier: measure what an edited model forgot, what it kept, and what still leaks.

The pure metric functions live in `loka.verify.metrics` (one import for all of them); the modules
behind it hold one idea each: `logprobs`, `accuracy`, `mia`, `truth_ratio`, `extraction`,
`grades`, and the `Missing` convention in `missing`. Running them on models: `data` (what to
measure on), `loaded` (the model under test), `forward` (one cached pass per fact set), the
evaluations `mia_eval`, `truth_eval`, `probes`, `relearn`, `extraction_eval`, their cache
`measure`, and the entry points `verifier.verify` (one model, one report) and `compare.compare`
(every method on one world, one ``results.json``).
"""
