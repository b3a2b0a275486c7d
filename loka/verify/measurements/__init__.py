"""The verifier's measurements, one file each: its maths, how it runs on a model, its columns.

Each file ends with one `loka.verify.registry.register` call; `loka.verify.registry.MODULES`
lists the files (the order they run and appear in). A measurement reads a
`loka.verify.verifier.Context` and returns ``{report key: value}`` (``Missing`` with a reason
where a value cannot be computed).
"""
