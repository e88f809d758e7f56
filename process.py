"""grand-challenge entry point for SynthRAD2025 (Task 1 MRI → sCT, Task 2 CBCT → sCT).

    python process.py                              # /input → /output, as grand-challenge runs it
    python process.py --input DIR --output DIR     # local runs

All logic lives in ``synthct.challenge``; this file only picks the application root (the folder holding resources/
and weights/) and returns the exit code.
"""

import sys
from pathlib import Path

from synthct.openmp import prefer_passive_openmp

prefer_passive_openmp()  # before torch loads its OpenMP runtime (see synthct/openmp.py)
from synthct.challenge.algorithm import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], app_root=Path(__file__).resolve().parent))
