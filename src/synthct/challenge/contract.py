"""The grand-challenge container contract of SynthRAD2025 (see docs: challenge.md §2-§4)."""

from __future__ import annotations

#: Input image folder per task, relative to the input root (/input on grand-challenge).
INPUT_IMAGE_DIRS: dict[str, str] = {"mri": "images/mri", "cbct": "images/cbct"}
MASK_DIR = "images/body"
REGION_FILE = "region.json"
#: Output folder relative to the output root (/output); exactly one .mha goes there.
OUTPUT_DIR = "images/synthetic-ct"
#: region.json strings → region codes used in SynthRAD case ids and in models.json.
REGION_CODES: dict[str, str] = {"Head and Neck": "HN", "Thorax": "TH", "Abdomen": "AB"}
IMAGE_SUFFIXES = (".mha", ".nii.gz", ".nii", ".nrrd")
DEFAULT_INPUT_ROOT = "/input"
DEFAULT_OUTPUT_ROOT = "/output"
