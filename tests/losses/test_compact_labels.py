"""The 117 → 7 grouping on the real TotalSegmentator label map example."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import SAMPLES

from synthct.contracts.compact_labels import COMPACT_GROUPS, compact_lookup, group_of, to_compact

_MAP_FILE = SAMPLES / "totalsegmentator" / "totalsegmentator_class_map.json"
CLASS_MAP = {int(k): v for k, v in json.loads(_MAP_FILE.read_text())["total"].items()}


def test_every_class_is_assigned_and_group_sizes() -> None:
    lut = compact_lookup(CLASS_MAP)
    assert len(CLASS_MAP) == 117 and lut[0] == 0 and np.all(lut[1:] >= 1) and np.all(lut[1:] <= 6)
    sizes = {COMPACT_GROUPS[g]: int((lut[1:] == g).sum()) for g in range(1, 7)}
    assert sizes == {"organs": 24, "cardiac": 18, "muscles": 12, "bones": 11, "ribs": 26, "vertebrae": 26}
    assert [group_of(CLASS_MAP[i]) for i in (5, 51, 79, 91, 116, 25)] == [1, 2, 3, 4, 5, 6]
    assert group_of("hip_left") == 4 and group_of("iliopsoas_left") == 3 and group_of("heart") == 2


def test_real_label_map_maps_every_nonzero_voxel() -> None:
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "totalsegmentator" / "example_seg.nii.gz")))
    compact = to_compact(seg, compact_lookup(CLASS_MAP))
    assert compact.shape == seg.shape and compact.dtype == np.uint8
    np.testing.assert_array_equal(compact > 0, seg > 0)
    present = set(np.unique(compact).tolist())
    assert present >= {0, 1, 6}  # an abdominal slab: organs and vertebrae at least
    liver = seg == 5
    assert np.all(compact[liver] == 1)


def test_unknown_label_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"labels \[200\] are not in the class map"):
        to_compact(np.array([0, 5, 200]), compact_lookup(CLASS_MAP))
