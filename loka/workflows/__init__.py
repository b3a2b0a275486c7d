"""Whole runs — the only modules that use more than one stage (attribute -> edit -> verify -> report).

`compare` (every method on a world, one ``results.json``), `user_data` (the same on your model and
files), `demo` (attribution, comparison and the report in one call), `sequential` (erasure
requests one batch after another), `update` / `update_check` (replacing an outdated fact), and
`runner` (guarded method runs and their worker processes).
"""
