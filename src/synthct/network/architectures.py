"""U-Nets whose decoders upsample with trilinear interpolation + convolution instead of transposed convolutions.

The paper (arXiv 2509.22394) replaces every transposed convolution by interpolation followed by a 3x3x3 convolution to
remove the checkerboard artefacts that AFP fine-tuning makes visible. We build the stock
``dynamic_network_architectures`` networks and then swap each ``decoder.transpconvs[i]`` for :class:`UpsampleConv`;
encoder, decoder stages and output layer stay stock. State-dict keys of the swapped modules become
``decoder.transpconvs.<i>.conv.{weight,bias}``.

This module imports only torch and dynamic_network_architectures (never nnunetv2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualUNet
from torch import nn

#: The helpers below take a dynamic_network_architectures U-Net, which ships no type information (``Any``): its
#: ``encoder``/``decoder`` attributes are not visible to a type checker through ``nn.Module``.

class UpsampleConv(nn.Module):
    """Interpolate by ``scale`` then convolve ``in_channels → out_channels`` (kernel ``kernel_size``, same padding).

    Input (B, C_in, *S) → output (B, C_out, *(S · scale)); 2-D or 3-D depending on ``conv_op``.
    """

    def __init__(
        self,
        conv_op: type[nn.Module],
        in_channels: int,
        out_channels: int,
        scale: Sequence[int],
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.scale = tuple(int(s) for s in scale)
        self.mode = "trilinear" if len(self.scale) == 3 else "bilinear"
        self.conv = conv_op(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = [int(n) * s for n, s in zip(x.shape[2:], self.scale, strict=True)]
        # Interpolation in the input's dtype: fp16 under autocast on CUDA, fp32 on CPU.
        return self.conv(F.interpolate(x, size=size, mode=self.mode, align_corners=False))


def _replace_transposed_convs(network: Any, upsample_kernel: int) -> None:
    """Swap every transposed conv of ``network.decoder`` for an :class:`UpsampleConv` with the same in/out shape."""
    decoder = network.decoder
    conv_op = network.encoder.conv_op
    new = []
    for tc in decoder.transpconvs:
        stride = tc.stride if isinstance(tc.stride, Sequence) else (tc.stride,) * (tc.weight.ndim - 2)
        new.append(
            UpsampleConv(conv_op, tc.in_channels, tc.out_channels, stride, upsample_kernel, bias=tc.bias is not None)
        )
    decoder.transpconvs = nn.ModuleList(new)


def _setup_input_skip(network: Any, input_skip: Sequence[float] | None) -> None:
    """Create the learnable affine input skip (scale a, shift b) and zero the output layer, or record its absence."""
    network.has_input_skip = input_skip is not None
    if input_skip is None:
        return
    ok = isinstance(input_skip, (list, tuple)) and len(input_skip) == 2
    ok = ok and all(isinstance(v, (int, float)) and math.isfinite(v) for v in input_skip)
    if not ok:
        raise ValueError(f"input_skip must be [scale, shift] (2 finite numbers), got {input_skip!r}")
    values = [float(v) for v in input_skip]
    network.input_skip_scale = nn.Parameter(torch.tensor([values[0]]))
    network.input_skip_shift = nn.Parameter(torch.tensor([values[1]]))
    for layer in network.decoder.seg_layers:
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def _add_input_skip(network: Any, x: torch.Tensor, out: torch.Tensor | list) -> torch.Tensor | list:
    """``out + a·x[:, :1] + b`` on the full-resolution output (the first one under deep supervision)."""
    if not network.has_input_skip:
        return out
    skip = network.input_skip_scale * x[:, :1] + network.input_skip_shift
    if isinstance(out, (list, tuple)):
        return [out[0] + skip, *out[1:]]
    return out + skip


class PlainConvUNetUpsample(PlainConvUNet):
    """Stock ``PlainConvUNet`` with upsample+conv decoder (the paper's plain U-Net). Same constructor arguments,
    plus ``upsample_kernel`` (default 3) and ``input_skip`` (see :class:`ResidualUNetUpsample`)."""

    def __init__(self, *args: object, upsample_kernel: int = 3, input_skip: Sequence[float] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _replace_transposed_convs(self, upsample_kernel)
        self.apply(PlainConvUNet.initialize)
        _setup_input_skip(self, input_skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list:
        return _add_input_skip(self, x, super().forward(x))


class ResidualUNetUpsample(ResidualUNet):
    """Stock ``ResidualUNet`` (residual encoder and residual decoder) with upsample+conv decoder: the paper's
    nnResU-Net. Same constructor arguments, plus ``upsample_kernel`` (default 3) and ``input_skip``.

    ``input_skip=[a0, b0]`` (default None: the paper's network, unchanged) adds a global affine input skip: output
    (B, 1, *S) = U-Net(x) + a·x[:, :1] + b with learnable scalars a, b initialised to a0, b0 (state-dict keys
    ``input_skip_scale`` / ``input_skip_shift``, shape (1,)) and the U-Net's output layer initialised to zero, so the
    untrained model is the affine map and training learns the correction. Meant for CBCT → CT, where a0, b0 map the
    normalised CBCT to the normalised CT as if CBCT HU were CT HU (``synthct plan --input-skip``).
    """

    def __init__(self, *args: object, upsample_kernel: int = 3, input_skip: Sequence[float] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _replace_transposed_convs(self, upsample_kernel)
        self.apply(ResidualUNet.initialize)
        _setup_input_skip(self, input_skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list:
        return _add_input_skip(self, x, super().forward(x))


#: Network classes a model folder may name (``synthct.json`` → ``network.class_name``). Explicit: no discovery.
NETWORK_CLASSES: dict[str, type[nn.Module]] = {
    "PlainConvUNetUpsample": PlainConvUNetUpsample,
    "ResidualUNetUpsample": ResidualUNetUpsample,
    "PlainConvUNet": PlainConvUNet,
    "ResidualUNet": ResidualUNet,
}


def synthrad_arch_kwargs(
    features: Sequence[int] = (32, 64, 128, 256, 320, 320),
    residual: bool = True,
    blocks_per_stage: int = 2,
) -> dict[str, object]:
    """Architecture kwargs (JSON form, as in nnU-Net plans) of the SynthRAD 3 x 1 x 1 mm 6-stage topology.

    Strides [1,1,1], [1,2,2], [2,2,2] x 3, [1,2,2]; kernels [1,3,3] + [3,3,3] x 5; InstanceNorm (affine), LeakyReLU.
    Fewer ``features`` give a shallower net with the leading strides/kernels (used for small demo/test models).
    """
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    kernels = [[1, 3, 3]] + [[3, 3, 3]] * 5
    n = len(features)
    if not 2 <= n <= 6:
        raise ValueError(f"features must have 2..6 stages, got {list(features)}")
    kwargs: dict[str, object] = {
        "n_stages": n,
        "features_per_stage": list(features),
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": kernels[:n],
        "strides": strides[:n],
        "n_conv_per_stage_decoder": [blocks_per_stage] * (n - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    if residual:
        kwargs["n_blocks_per_stage"] = [blocks_per_stage] * n
    else:
        kwargs["n_conv_per_stage"] = [blocks_per_stage] * n
    return kwargs
