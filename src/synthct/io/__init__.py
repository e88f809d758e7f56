"""Image input/output (SimpleITK), geometry handling and atomic writes."""

from synthct.io.image import Geometry, read_image, write_image_atomic

__all__ = ["Geometry", "read_image", "write_image_atomic"]
