"""synthct: synthetic CT from MRI (SynthRAD2025 Task 1) and CBCT (Task 2).

Layers: ``io`` → ``preprocessing`` → ``network`` → ``inference`` → ``challenge``; ``metrics`` beside them.
"""

__version__ = "0.1.0"

#: HU range of every CT the challenge scores (SynthRAD2025 evaluation, ``image_metrics.py``).
HU_MIN: float = -1024.0
HU_MAX: float = 3071.0

__all__ = ["HU_MAX", "HU_MIN", "__version__"]
