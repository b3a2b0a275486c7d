"""LOKA — Localized Knowledge Ablation: find, edit and verify the components that carry knowledge."""

__version__ = "0.1.0"
