"""Sliding-window speed and accuracy: synthct's engine vs stock nnunetv2 2.8.1, same network, same volume, one run.

    python benchmarks/inference_speed.py                     # CPU-sized defaults (real porcine sample, small net)
    python benchmarks/inference_speed.py --gpu-size          # paper-sized nnResU-Net, 48x192x192, 98x398x465

Both engines get the same network object and the same normalised volume. The reference is an fp64 pass over every
tile (network and accumulation in float64). Errors are reported in HU inside the body mask, with the target std
``--target-std`` (HU per z unit). The network's output bias is set to ``--output-bias`` z so that its outputs lie in the
range of real normalised CT values (random networks otherwise predict ~0, which hides fp16 accumulation error).

The last line is machine-readable:
``speedup=<stock time / our time> max_abs_hu=<ours vs fp64> stock_max_abs_hu=<stock vs fp64>``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.abc
import importlib.machinery
import importlib.util
import platform
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

_STUBBED = ("SimpleITK", "nibabel", "blosc2", "imagecodecs")


class _Anything(type):
    """A class whose every attribute is again such a class (enough for import-time type hints)."""

    def __getattr__(cls, attr: str) -> type:
        return _Anything(attr, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty modules for I/O libraries that the stock sliding-window path never calls (GPU images lack them)."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001
        if name.split(".")[0] in _STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):  # noqa: ANN001
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: _Anything(attr, (), {})
        return module

    def exec_module(self, module):  # noqa: ANN001
        pass


def _stub_missing_io_libraries() -> None:
    if any(importlib.util.find_spec(n) is None for n in _STUBBED[:3]):
        sys.meta_path.insert(0, _StubFinder())


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu-size", action="store_true",
                   help="paper-sized run: nnResU-Net 32-320, patch 48x192x192, volume 98x398x465")
    p.add_argument("--features", type=int, nargs="+", default=None, help="features per stage (default 8 16 32 64)")
    p.add_argument("--plain", action="store_true", help="plain U-Net instead of the residual U-Net")
    p.add_argument("--patch", type=int, nargs=3, default=None, help="Z Y X (default 24 96 96)")
    p.add_argument("--volume", type=int, nargs=3, default=None,
                   help="Z Y X of a synthetic volume with an elliptic body; default: the real porcine sample")
    p.add_argument("--step", type=float, default=0.3)
    p.add_argument("--blend", choices=("mean", "gaussian"), default="mean")
    p.add_argument("--tile-batch", type=int, default=0, help="our tiles per forward (0 = automatic)")
    p.add_argument("--amp", choices=("float16", "bfloat16", "float32"), default="float16",
                   help="our forward precision on CUDA (float32 also disables TF32); stock always autocasts fp16")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per engine (best is reported)")
    p.add_argument("--target-std", type=float, default=500.0, help="HU per z unit for the error report")
    p.add_argument("--output-bias", type=float, default=2.0, help="output-layer bias (z units)")
    p.add_argument("--no-reference", action="store_true", help="skip the fp64 reference (faster on the GPU)")
    args = p.parse_args()
    if args.gpu_size:
        args.features = args.features or [32, 64, 128, 256, 320, 320]
        args.patch = args.patch or [48, 192, 192]
        args.volume = args.volume or [98, 398, 465]
    args.features = args.features or [8, 16, 32, 64]
    args.patch = args.patch or [24, 96, 96]
    return args


def load_volume(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """(normalised image (Z, Y, X) float32, body mask bool, description)."""
    from synthct.contracts.normalization import zscore_in_mask

    if args.volume is None:
        import SimpleITK as sitk

        mr = sitk.GetArrayFromImage(sitk.ReadImage(str(REPO / "samples/porcine/mr.mha")))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(REPO / "samples/porcine/mask.mha"))) > 0
        return zscore_in_mask(mr, mask), mask, f"real porcine MR sample {mr.shape}"
    z, y, x = args.volume
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:y, :x]
    body2d = ((yy - y / 2) / (0.45 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 <= 1
    mask = np.broadcast_to(body2d, (z, y, x)).copy()
    image = rng.standard_normal((z, y, x), dtype=np.float32)
    image[~mask] = -2.0
    return image, mask, f"synthetic {tuple(args.volume)} with elliptic body ({mask.mean():.0%} of voxels)"


def build_net(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.build import architecture_block, build_network

    name = "PlainConvUNetUpsample" if args.plain else "ResidualUNetUpsample"
    torch.manual_seed(0)
    net = build_network(architecture_block(name, synthrad_arch_kwargs(args.features, residual=not args.plain)))
    with torch.no_grad():
        net.decoder.seg_layers[-1].bias.fill_(args.output_bias)
    return net.to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_stock(net, image: torch.Tensor, args, device) -> tuple[np.ndarray, float, int]:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=args.step, use_gaussian=args.blend == "gaussian", use_mirroring=False,
                                perform_everything_on_device=True, device=device, verbose=False, allow_tqdm=False)
    predictor.network = net
    predictor.configuration_manager = SimpleNamespace(patch_size=list(args.patch))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=1)
    predictor.allowed_mirroring_axes = None
    n_tiles = len(predictor._internal_get_sliding_window_slicers(tuple(image.shape[1:])))
    best, out = float("inf"), None
    for _ in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        out = predictor.predict_sliding_window_return_logits(image)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return out[0].float().cpu().numpy(), best, n_tiles


def run_ours(net, image: torch.Tensor, mask: np.ndarray, args, device, skip: bool) -> tuple[np.ndarray, float]:
    from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict

    settings = SlidingWindowSettings(tile_size=tuple(args.patch), step=args.step, blend=args.blend,
                                     tile_batch=args.tile_batch, amp_dtype=args.amp, skip_outside_mask=skip,
                                     progress=False)
    best, out = float("inf"), None
    for _ in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        out = sliding_window_predict([net], image, settings, device, mask=mask)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return out[0].numpy(), best


def reference(net, image: torch.Tensor, args, device, mode: str) -> np.ndarray:
    """Every tile, one at a time, accumulated in float64 (nnU-Net padding and tiling).

    mode "fp64": the network itself in float64 (end-to-end reference). mode "fp16-tiles": the float32 network under
    fp16 autocast at batch 1, exactly the tile outputs stock nnU-Net computes, so the difference to it isolates the
    stitching (accumulation) error.
    """
    from synthct.inference.blending import weight_map
    from synthct.inference.tiling import centred_padding, plan_tiles

    model = copy.deepcopy(net).double() if mode == "fp64" else net
    dtype = torch.float64 if mode == "fp64" else torch.float32
    pads = centred_padding(image.shape[1:], args.patch)
    flat = [p for pair in reversed(pads) for p in pair]
    padded = torch.nn.functional.pad(image[None].to(dtype), flat, value=0.0)[0].to(device)
    w = weight_map(tuple(args.patch), args.blend, 0.125, device)
    w = torch.ones(args.patch, dtype=torch.float64, device=device) if w is None else w.double()
    total = torch.zeros(padded.shape[1:], dtype=torch.float64, device=device)
    weight = torch.zeros_like(total)
    amp = mode != "fp64" and device.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        for tile in plan_tiles(padded.shape[1:], args.patch, args.step):
            total[tile] += model(padded[(slice(None), *tile)][None])[0, 0].double() * w
            weight[tile] += w
    crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, image.shape[1:], strict=True))
    return (total / weight)[crop].cpu().numpy()


def main() -> None:
    args = parse_args()
    _stub_missing_io_libraries()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if args.amp == "float32":  # a true float32 forward for our engine
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    volume, mask, what = load_volume(args)
    net = build_net(args, device)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device={device} ({gpu}) torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"network={'PlainConvUNetUpsample' if args.plain else 'ResidualUNetUpsample'} features={args.features} "
          f"params={params:.2f}M patch={tuple(args.patch)} step={args.step} blend={args.blend}")
    print(f"volume: {what}")
    image = torch.from_numpy(volume)[None]
    if device.type == "cuda":  # warm-up both engines once (cudnn autotuning, allocator)
        run_ours(net, image, mask, SimpleNamespace(**{**vars(args), "repeats": 1}), device, True)
        run_stock(net, image, SimpleNamespace(**{**vars(args), "repeats": 1}), device)
    stock, t_stock, n_tiles = run_stock(net, image, args, device)
    ours, t_ours = run_ours(net, image, mask, args, device, skip=True)
    ours_all, t_all = run_ours(net, image, mask, args, device, skip=False)
    print(f"stock nnUNetPredictor: {t_stock:.3f} s ({n_tiles} tiles, batch 1, fp16 accumulators)")
    print(f"synthct, every tile:   {t_all:.3f} s (float32 accumulators)  ratio {t_stock / t_all:.2f}x")
    print(f"synthct, mask-aware:   {t_ours:.3f} s  ratio {t_stock / t_ours:.2f}x")
    from synthct.inference.sliding_window import select_tiles
    from synthct.inference.tiling import centred_padding, padded_shape, plan_tiles

    kept = select_tiles(plan_tiles(padded_shape(mask.shape, args.patch), args.patch, args.step),
                        np.pad(mask, centred_padding(mask.shape, args.patch)))
    precision = args.amp if device.type == "cuda" else "float32"
    print(f"tiles computed by synthct (mask-aware): {len(kept)} of {n_tiles}; our forward precision: {precision}")
    body = mask
    hu = args.target_std
    if args.no_reference:
        err, stock_err = float(np.abs(ours - ours_all)[body].max()) * hu, float("nan")
        print("no fp64 reference: max_abs_hu is ours(mask-aware) vs ours(every tile)")
    else:
        ref = reference(net, image, args, device, "fp64")
        err = float(np.abs(ours.astype(np.float64) - ref)[body].max()) * hu
        err_all = float(np.abs(ours_all.astype(np.float64) - ref)[body].max()) * hu
        stock_err = float(np.abs(stock.astype(np.float64) - ref)[body].max()) * hu
        print(f"max |error| inside the body vs fp64 network + fp64 accumulation (HU at {hu:g} HU/z): "
              f"synthct {err:.4f}, synthct every tile {err_all:.4f}, stock {stock_err:.4f}")
        if device.type == "cuda":
            tiles16 = reference(net, image, args, device, "fp16-tiles")
            print(f"stitching only, vs fp64 accumulation of stock's own fp16 tile outputs: synthct "
                  f"{float(np.abs(ours - tiles16)[body].max()) * hu:.4f} HU (includes fp16 differences of batched "
                  f"tiles), stock {float(np.abs(stock - tiles16)[body].max()) * hu:.4f} HU")
    print(f"speedup={t_stock / t_ours:.3f} max_abs_hu={err:.4f} stock_max_abs_hu={stock_err:.4f}")


if __name__ == "__main__":
    main()
