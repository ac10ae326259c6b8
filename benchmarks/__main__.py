"""``python benchmarks`` runs every benchmark: same as ``python benchmarks/run_all.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_all import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
