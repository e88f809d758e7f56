"""TotalSegmentator ``total`` (117 classes, v2) → the 7-class compact map of the AFP feature extractor.

The paper's extractor ("TS_Compact7") segments background + organs, cardiac, muscles, bones, ribs, vertebrae. We
follow TotalSegmentator's own five "parts" (``map_to_binary.class_map_5_parts``: organs, vertebrae, cardiac, muscles,
ribs) and split the bones out of its "muscles" part:

=====  ==========  ==========================================================================================
value  group       TotalSegmentator ``total`` labels
=====  ==========  ==========================================================================================
0      background  0
1      organs      1-24: spleen, kidneys, gallbladder, liver, stomach, pancreas, adrenal glands, the 5 lung
                   lobes, esophagus, trachea, thyroid, small bowel, duodenum, colon, bladder, prostate,
                   kidney cysts
2      cardiac     51-68: heart, aorta, pulmonary vein, brachiocephalic trunk and veins, subclavian and common
                   carotid arteries, left atrial appendage, venae cavae, portal/splenic vein, iliac vessels
3      muscles     79-90: spinal cord, gluteus maximus/medius/minimus, autochthon, iliopsoas, brain
4      bones       69-78 and 91: humerus, scapula, clavicula, femur, hip, skull
5      ribs        92-117: ribs left/right 1-12, sternum, costal cartilages
6      vertebrae   25-50: sacrum, vertebrae S1 … C1
=====  ==========  ==========================================================================================

The assignment is by name (:func:`group_of`), checked against the class map that ships with the tests, and every one
of the 117 labels maps to exactly one group.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

COMPACT_GROUPS: tuple[str, ...] = ("background", "organs", "cardiac", "muscles", "bones", "ribs", "vertebrae")

_CARDIAC = ("heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery", "common_carotid_artery",
            "brachiocephalic_vein", "atrial_appendage", "superior_vena_cava", "inferior_vena_cava",
            "portal_vein_and_splenic_vein", "iliac_artery", "iliac_vena")
_MUSCLES = ("spinal_cord", "gluteus_maximus", "gluteus_medius", "gluteus_minimus", "autochthon", "iliopsoas", "brain")
_BONES = ("humerus", "scapula", "clavicula", "femur", "hip", "skull")
_RIBS = ("rib_left", "rib_right", "sternum", "costal_cartilages")
_VERTEBRAE = ("vertebrae", "sacrum")


def group_of(name: str) -> int:
    """Compact group value (1..6) of a TotalSegmentator ``total`` class name; organs is the default group."""
    for value, prefixes in ((2, _CARDIAC), (3, _MUSCLES), (4, _BONES), (5, _RIBS), (6, _VERTEBRAE)):
        if any(name == p or name.startswith(p + "_") for p in prefixes):
            return value
    return 1


def compact_lookup(class_map: Mapping[int, str] | Mapping[str, str]) -> np.ndarray:
    """A lookup table ``lut[total_label] = compact_value`` (uint8, length max label + 1; ``lut[0] = 0``)."""
    labels = {int(k): v for k, v in class_map.items()}
    if not labels or min(labels) < 1:
        raise ValueError(f"class map must have labels >= 1, got {sorted(labels)[:5]}")
    lut = np.zeros(max(labels) + 1, dtype=np.uint8)
    for label, name in labels.items():
        lut[label] = group_of(name)
    return lut


def to_compact(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map a ``total`` label map (any integer dtype, any shape) to compact groups (uint8, same shape).

    Raises:
        ValueError: a label outside the class map (quoting the offending values).
    """
    if labels.size and (labels.min() < 0 or labels.max() >= lut.size):
        bad = np.unique(labels[(labels < 0) | (labels >= lut.size)])[:5]
        raise ValueError(f"labels {bad.tolist()} are not in the class map (0..{lut.size - 1})")
    return lut[labels]
