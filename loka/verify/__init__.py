"""The verifier: measure what an edited model forgot, what it kept, and what still leaks.

The pure metric functions live in `loka.verify.metrics` (one import for all of them); the modules
behind it hold one idea each: `logprobs`, `accuracy`, `mia`, `truth_ratio`, `extraction`,
`grades`, and the `Missing` convention in `missing`.
"""
