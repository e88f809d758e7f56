"""Parameter counts of the SynthRAD topology and the upsample+conv decoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthct.network.architectures import UpsampleConv, synthrad_arch_kwargs
from synthct.network.build import architecture_block, build_network


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("class_name", "residual", "count"),
    [
        ("PlainConvUNet", False, 30_702_693),  # the paper's ~30.7 M U-Net (stock, transposed conv)
        ("ResidualUNet", True, 57_145_861),  # the paper's ~57 M nnResU-Net (stock, transposed conv)
        ("PlainConvUNetUpsample", False, 35_439_717),  # ours: trilinear + 3x3x3 conv decoder
        ("ResidualUNetUpsample", True, 61_882_885),
    ],
)
def test_parameter_counts_synthrad_topology(class_name: str, residual: bool, count: int) -> None:
    net = build_network(architecture_block(class_name, synthrad_arch_kwargs(residual=residual)))
    assert n_params(net) == count


@pytest.mark.parametrize("class_name", ["PlainConvUNetUpsample", "ResidualUNetUpsample"])
def test_no_transposed_convolutions_left_and_shape_preserved(class_name: str) -> None:
    residual = class_name.startswith("Residual")
    net = build_network(architecture_block(class_name, synthrad_arch_kwargs((4, 8, 16, 16), residual=residual)))
    assert not any(isinstance(m, nn.ConvTranspose3d) for m in net.modules())
    ups = [m for m in net.modules() if isinstance(m, UpsampleConv)]
    assert [u.scale for u in ups] == [(2, 2, 2), (2, 2, 2), (1, 2, 2)]
    assert all(u.conv.kernel_size == (3, 3, 3) for u in ups)
    with torch.no_grad():
        y = net.eval()(torch.randn(2, 1, 8, 32, 48))
    assert y.shape == (2, 1, 8, 32, 48)


def test_unknown_class_and_op_are_rejected() -> None:
    block = architecture_block("ResidualUNetUpsample", synthrad_arch_kwargs((4, 8), residual=True))
    with pytest.raises(ValueError, match="network class 'evil.Module' is not supported"):
        build_network({**block, "network_class_name": "evil.Module"})
    bad = {**block, "arch_kwargs": {**block["arch_kwargs"], "nonlin": "os.system"}}
    with pytest.raises(ValueError, match="nonlin='os.system' is not a known torch op"):
        build_network(bad)
