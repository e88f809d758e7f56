"""Build a network from an nnU-Net-style architecture block without nnU-Net's class discovery.

The block is ``{"network_class_name": str, "arch_kwargs": {...}, "_kw_requires_import": [...]}`` as written in
nnU-Net plans. Class names and the torch ops named in ``arch_kwargs`` are resolved through explicit tables; anything
else is rejected with a ValueError that quotes it (nothing is imported by name from a model folder).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from synthct.network.architectures import NETWORK_CLASSES

#: Torch modules an architecture block may name, by their dotted paths as nnU-Net writes them.
TORCH_OPS: dict[str, type[nn.Module]] = {
    "torch.nn.modules.conv.Conv3d": nn.Conv3d,
    "torch.nn.modules.conv.Conv2d": nn.Conv2d,
    "torch.nn.Conv3d": nn.Conv3d,
    "torch.nn.Conv2d": nn.Conv2d,
    "torch.nn.modules.instancenorm.InstanceNorm3d": nn.InstanceNorm3d,
    "torch.nn.modules.instancenorm.InstanceNorm2d": nn.InstanceNorm2d,
    "torch.nn.InstanceNorm3d": nn.InstanceNorm3d,
    "torch.nn.InstanceNorm2d": nn.InstanceNorm2d,
    "torch.nn.modules.batchnorm.BatchNorm3d": nn.BatchNorm3d,
    "torch.nn.BatchNorm3d": nn.BatchNorm3d,
    "torch.nn.modules.dropout.Dropout3d": nn.Dropout3d,
    "torch.nn.Dropout3d": nn.Dropout3d,
    "torch.nn.LeakyReLU": nn.LeakyReLU,
    "torch.nn.modules.activation.LeakyReLU": nn.LeakyReLU,
    "torch.nn.ReLU": nn.ReLU,
    "torch.nn.modules.activation.ReLU": nn.ReLU,
}


def _class_name(dotted: str) -> str:
    """``dynamic_network_architectures.architectures.unet.ResidualUNet`` → ``ResidualUNet``; plugin paths likewise."""
    return dotted.rsplit(".", 1)[-1]


def resolve_arch_kwargs(arch_kwargs: dict[str, Any], requires_import: list[str]) -> dict[str, Any]:
    """Replace the dotted op names listed in ``requires_import`` by torch classes from :data:`TORCH_OPS`."""
    out = dict(arch_kwargs)
    for key in requires_import:
        value = out.get(key)
        if value is None:
            continue
        if value not in TORCH_OPS:
            raise ValueError(f"architecture kwarg {key}={value!r} is not a known torch op; known: {sorted(TORCH_OPS)}")
        out[key] = TORCH_OPS[value]
    return out


def build_network(architecture: dict[str, Any], input_channels: int = 1, output_channels: int = 1) -> nn.Module:
    """Construct the network described by an nnU-Net ``architecture`` block (no deep supervision).

    Args:
        architecture: ``{"network_class_name", "arch_kwargs", "_kw_requires_import"}``.
        input_channels: number of input image channels (1 for MR or CBCT).
        output_channels: number of regressed channels (1: normalised CT).

    Raises:
        ValueError: unknown network class or op name.
    """
    name = _class_name(str(architecture.get("network_class_name", "")))
    if name not in NETWORK_CLASSES:
        raise ValueError(
            f"network class {architecture.get('network_class_name')!r} is not supported; "
            f"known: {sorted(NETWORK_CLASSES)}"
        )
    kwargs = resolve_arch_kwargs(architecture["arch_kwargs"], list(architecture.get("_kw_requires_import", [])))
    return NETWORK_CLASSES[name](
        input_channels=input_channels, num_classes=output_channels, deep_supervision=False, **kwargs
    )


def architecture_block(class_name: str, arch_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON architecture block for ``class_name`` and JSON-form ``arch_kwargs`` (ops as dotted strings)."""
    if class_name not in NETWORK_CLASSES:
        raise ValueError(f"network class {class_name!r} is not supported; known: {sorted(NETWORK_CLASSES)}")
    return {
        "network_class_name": f"synthct.network.architectures.{class_name}"
        if class_name.endswith("Upsample")
        else f"dynamic_network_architectures.architectures.unet.{class_name}",
        "arch_kwargs": arch_kwargs,
        "_kw_requires_import": [k for k in ("conv_op", "norm_op", "dropout_op", "nonlin") if k in arch_kwargs],
    }
