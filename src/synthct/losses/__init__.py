"""Losses: the AFP loss and its frozen feature extractor; the TotalSegmentator → compact label grouping."""

from synthct.contracts.compact_labels import COMPACT_GROUPS, compact_lookup, to_compact
from synthct.losses.afp import AFPLoss
from synthct.losses.feature_extractor import FrozenFeatureNet, default_taps, load_feature_extractor

__all__ = ["COMPACT_GROUPS", "AFPLoss", "FrozenFeatureNet", "compact_lookup", "default_taps",
           "load_feature_extractor", "to_compact"]
