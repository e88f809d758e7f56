"""Parameter counts of the SynthRAD topology and the upsample+conv decoders."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("class_name", ["PlainConvUNetUpsample", "ResidualUNetUpsample"])
def test_input_skip_starts_as_the_affine_map_and_learns(class_name: str) -> None:
    residual = class_name.startswith("Residual")
    kwargs = synthrad_arch_kwargs((4, 8, 16), residual=residual)
    plain = build_network(architecture_block(class_name, kwargs))
    net = build_network(architecture_block(class_name, {**kwargs, "input_skip": [0.9, -0.2]}))
    assert n_params(net) == n_params(plain) + 2
    assert {"input_skip_scale", "input_skip_shift"} <= set(net.state_dict())
    torch.manual_seed(0)
    x = torch.randn(2, 1, 8, 32, 32)
    assert torch.equal(net(x), 0.9 * x - 0.2)  # untrained: exactly the affine map (output layer zero)
    target = 1.1 * x + 0.3 + 0.1 * torch.tanh(x).roll(1, dims=-1)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9)
    losses = []
    for _ in range(5):
        loss = (net(x) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert net.input_skip_scale.item() != 0.9 and net.input_skip_shift.item() != -0.2
    assert net.decoder.seg_layers[-1].weight.detach().abs().sum().item() > 0  # the U-Net's output layer learns too


def test_input_skip_survives_export_and_reload(tmp_path: Path) -> None:
    from synthct.network.checkpoint import load_state_dict, save_safetensors

    arch = architecture_block("ResidualUNetUpsample", {**synthrad_arch_kwargs((4, 8, 16)), "input_skip": [1.2, 0.5]})
    net = build_network(arch)
    with torch.no_grad():
        net.input_skip_scale.fill_(1.7)
        net.decoder.seg_layers[-1].weight.normal_()
    save_safetensors(net.state_dict(), tmp_path / "model.safetensors")
    again = build_network(arch)
    again.load_state_dict(load_state_dict(tmp_path / "model.safetensors"), strict=True)
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), net.eval()(x))
    half = load_state_dict(save_safetensors(net.state_dict(), tmp_path / "half.safetensors", half=True))
    assert half["input_skip_scale"].dtype == torch.float32
    assert half["input_skip_scale"].item() == pytest.approx(1.7, abs=1e-7)
    assert half["decoder.seg_layers.0.weight"].dtype == torch.float16
    with pytest.raises(RuntimeError, match="input_skip_scale"):  # a skip model's weights need the skip
        build_network(architecture_block("ResidualUNetUpsample", synthrad_arch_kwargs((4, 8, 16)))).load_state_dict(
            net.state_dict(), strict=True)


@pytest.mark.parametrize("bad", [[1.0], [1.0, float("nan")], "1,2"])
def test_input_skip_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="input_skip must be"):
        build_network(architecture_block("ResidualUNetUpsample", {**synthrad_arch_kwargs((4, 8)), "input_skip": bad}))
