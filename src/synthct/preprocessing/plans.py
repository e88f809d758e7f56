"""Read the plans that ``synthct plan`` (:mod:`synthct.network.planning`) wrote, for preprocessing and training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The AFP extractor's plans (synthct extractor train), never synthesis plans.
EXTRACTOR_PLANS_NAME = "synthctExtractorPlans"


def load_plans(preprocessed_dataset_dir: Path, plans_name: str) -> dict[str, Any]:
    """Read ``<preprocessed>/<dataset>/<plans_name>.json`` and check it carries a ``synthct`` block."""
    path = Path(preprocessed_dataset_dir) / f"{plans_name}.json"
    if not path.is_file():
        others = sorted(p.stem for p in Path(preprocessed_dataset_dir).glob("synthct*Plans.json")
                        if p.stem != EXTRACTOR_PLANS_NAME) if Path(preprocessed_dataset_dir).is_dir() else []
        if others:
            arch = {"synthctUNetPlans": "unet", "synthctResUNetPlans": "resunet"}.get(plans_name)
            also = f", or run `synthct plan --arch {arch}` for {plans_name}" if arch else ""
            raise FileNotFoundError(f"plans file not found: {path}; this dataset was planned as {', '.join(others)}: "
                                    f"pass --plans {others[0]}{also}")
        raise FileNotFoundError(f"plans file not found: {path} (run `synthct plan` first)")
    plans = json.loads(path.read_text())
    if "synthct" not in plans:
        raise ValueError(f"{path} has no 'synthct' block: plan the dataset with `synthct plan`")
    return plans
