import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("RAYNAS_DATA_DIR", SHARED))
    if not (root / "nb201" / "ground_truth.parquet").is_file():
        pytest.skip(f"benchmark data not found at {root}")
    return root
