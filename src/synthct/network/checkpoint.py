"""Network weights: safetensors (inference format) and stock nnU-Net checkpoints (read with weights_only=True).

Nothing is ever unpickled beyond what ``torch.load(weights_only=True)`` allows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from numpy._core import multiarray
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from synthct.network.build import build_network
from synthct.network.manifest import Fold, ModelManifest, parse_fold, read_manifest
from synthct.typing import PathLike

LOG = logging.getLogger(__name__)
_COMPILED_PREFIX = "_orig_mod."


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``torch.compile`` (``_orig_mod.``) and DDP (``module.``) prefixes from state-dict keys."""
    out = {}
    for key, value in state.items():
        for prefix in (_COMPILED_PREFIX, "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


#: Data-only numpy types that stock nnU-Net checkpoints contain (numpy scalars and arrays in the training logs); they
#: are allowed in addition to torch's weights-only defaults. Arbitrary classes are still refused.
NUMPY_SAFE_GLOBALS: list = [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype] + [
    getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]


def read_nnunet_checkpoint(path: PathLike) -> dict:
    """Load a stock nnU-Net ``checkpoint_*.pth`` with ``weights_only=True``: tensors, plain containers and numpy
    scalars/arrays only (:data:`NUMPY_SAFE_GLOBALS`)."""
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError and friends for anything outside the allow-list
        raise ValueError(f"cannot read {path} as an nnU-Net checkpoint with weights_only=True: {exc}") from None


def load_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Network weights from ``.safetensors`` or a stock nnU-Net ``.pth`` checkpoint (its ``network_weights``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _strip_prefixes(_read_safetensors(path))
    if path.suffix == ".pth":
        checkpoint = read_nnunet_checkpoint(path)
        if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
            raise ValueError(f"{path} has no 'network_weights' entry: not an nnU-Net checkpoint")
        return _strip_prefixes(checkpoint["network_weights"])
    raise ValueError(f"weights file must be .safetensors or .pth, got {path.name!r}")


def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep one key per shared tensor (dynamic_network_architectures registers the same parameters under several
    names, e.g. ``conv`` and ``all_modules.0``); returns (unique tensors, alias → canonical key)."""
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for key, value in state.items():
        ident = (int(value.untyped_storage().data_ptr()), int(value.storage_offset()), tuple(value.shape))
        if value.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        unique[key] = value
    return unique, aliases


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
        metadata = handle.metadata() or {}
    for alias, canonical in json.loads(metadata.get("aliases", "{}")).items():
        state[alias] = state[canonical]
    return state


def save_safetensors(state: dict[str, torch.Tensor], path: PathLike, half: bool = False) -> Path:
    """Write network weights as safetensors (optionally floating tensors in fp16). Returns the path.

    With ``half``, single-element tensors stay float32: a scale such as ``input_skip_scale`` multiplies every input
    voxel, and its fp16 rounding (up to 2^-11 relative) alone would shift the output by up to ~0.5 HU.

    Parameters registered under several names are stored once; the aliases travel in the file's metadata and are
    restored by :func:`load_state_dict`, so strict loading still sees every key.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unique, aliases = _dedupe(_strip_prefixes(state))
    tensors = {}
    for key, value in unique.items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point() and value.numel() > 1:
            value = value.half()
        tensors[key] = value
    save_file(tensors, str(path), metadata={"format": "pt", "producer": "synthct", "aliases": json.dumps(aliases)})
    return path


def load_network(manifest: ModelManifest, weights: PathLike) -> nn.Module:
    """Build the manifest's network and load ``weights`` strictly (fp16 weights are upcast to fp32); eval mode."""
    network = build_network(manifest.architecture, manifest.input_channels, 1)
    state = load_state_dict(weights)
    reference = network.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights {weights} do not match the network in synthct.json: {exc}") from None
    return network.eval()


def load_model_folder(model_dir: PathLike, folds: list[Fold] | None = None) -> tuple[ModelManifest, list[nn.Module]]:
    """Read the manifest and load one network per requested fold (all folds of the manifest by default).

    Raises:
        FileNotFoundError: missing manifest or weights file.
        ValueError: malformed manifest, unknown fold, mismatching weights.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    chosen = manifest.folds if folds is None else [parse_fold(f) for f in folds]
    unknown = [f for f in chosen if str(f) not in manifest.weights]
    if unknown:
        raise ValueError(f"folds {unknown} are not in model folder {model_dir} (it has {manifest.folds})")
    networks = [load_network(manifest, model_dir / manifest.weights[str(f)]) for f in chosen]
    LOG.info("loaded %s: task %s, regions %s, folds %s", model_dir, manifest.task, ",".join(manifest.regions), chosen)
    return manifest, networks
