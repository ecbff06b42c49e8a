"""Where the read-only shared inputs live (imported by the tests as `_shared`)."""

from pathlib import Path

# /work/main/tests/conftest.py -> /work/shared (shared/ sits beside the repo)
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
DATA_DIR = SHARED_DIR / "data"
