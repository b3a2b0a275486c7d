"""LOKA's input and output wing: data files, checkpoints, manifests, provenance, one atomic writer.

Every stage reads and writes through here, so the rules hold everywhere: inputs are validated
before any model is loaded (`data`, `models`), outputs never land on or inside a model or the
cache (`outputs`), every file and directory appears whole or not at all (`atomic`, `stale`), and
a saved model is complete, finite and sealed (`checkpoint`, `manifest`, `provenance`).

Example:
    >>> from loka.io import load_facts, save_checkpoint, write_json
"""

from loka.io.atomic import dumps, staged_dir, write_bytes, write_json, write_text
from loka.io.checkpoint import (
    REFUSAL_FILTER,
    file_sha256,
    non_finite_weights,
    save_checkpoint,
    sha256_of_checkpoint,
)
from loka.io.data import FactRecord, load_facts, load_passages, write_jsonl
from loka.io.manifest import MANIFEST, manifest_value, read_manifest, seal_problem, write_manifest
from loka.io.models import SUPPORTED_ARCHITECTURES, load_bridge, load_hf, resolve_device
from loka.io.outputs import cache_path, check_output, is_model_dir
from loka.io.provenance import check_provenance, provenance_section

__all__ = [
    "MANIFEST", "REFUSAL_FILTER", "SUPPORTED_ARCHITECTURES", "FactRecord", "cache_path",
    "check_output", "check_provenance", "dumps", "file_sha256", "is_model_dir", "load_bridge",
    "load_facts", "load_hf", "load_passages", "manifest_value", "non_finite_weights",
    "provenance_section", "read_manifest", "resolve_device", "save_checkpoint", "seal_problem",
    "sha256_of_checkpoint", "staged_dir", "write_bytes", "write_json", "write_jsonl",
    "write_manifest", "write_text",
]
