import torch
from transformer_lens.model_bridge import TransformerBridge

from attribution.components import ModelShape, validate_components


def test_random_checkpoints_boot_and_expose_component_hooks(random_checkpoints):
    for arch, path in random_checkpoints.items():
        bridge = TransformerBridge.boot_transformers(str(path), device="cpu")
        shape = ModelShape.of(bridge)
        validate_components(bridge, shape.components())
        ids = torch.tensor([[1, 5, 7, 9]])
        assert bridge(ids).shape[-1] == bridge.cfg.d_vocab, arch
