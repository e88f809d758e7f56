"""synthct: synthetic CT from MRI (SynthRAD2025 Task 1) and CBCT (Task 2).

Layers: ``contracts`` (normalisation, compact labels; pure numpy) → ``io`` → ``preprocessing`` → ``network``
(architectures, planning, model folders) → ``inference`` → ``challenge``; ``losses``, ``training`` and ``metrics``
beside them. A module imports only its own layer and those below (``tests/test_layers.py``).
"""

__version__ = "0.1.0"

#: HU range of every CT the challenge scores (SynthRAD2025 evaluation, ``image_metrics.py``).
HU_MIN: float = -1024.0
HU_MAX: float = 3071.0

__all__ = ["HU_MAX", "HU_MIN", "__version__"]
