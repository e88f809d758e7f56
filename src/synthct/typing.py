"""Type aliases shared across the package. Arrays are numpy, axis order (Z, Y, X) unless stated otherwise."""

from __future__ import annotations

import os
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Shape3D: TypeAlias = tuple[int, int, int]
#: Voxel spacing in mm, (z, y, x) order (numpy order, the reverse of SimpleITK's GetSpacing()).
SpacingZYX: TypeAlias = tuple[float, float, float]
PathLike: TypeAlias = str | os.PathLike[str]
#: A float32 volume in Hounsfield units, shape (Z, Y, X).
HUArray: TypeAlias = npt.NDArray[np.float32]
