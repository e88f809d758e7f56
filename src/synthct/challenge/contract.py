"""The grand-challenge container contract of SynthRAD2025 (see docs: challenge.md §2-§4)."""

from __future__ import annotations

#: Tasks, regions, region.json strings and image suffixes: :mod:`synthct.contracts.synthrad`.
MASK_DIR = "images/body"
REGION_FILE = "region.json"
#: Output folder relative to the output root (/output); exactly one .mha goes there.
OUTPUT_DIR = "images/synthetic-ct"
DEFAULT_INPUT_ROOT = "/input"
DEFAULT_OUTPUT_ROOT = "/output"
