"""Writes tests/golden/v1, a small format-1 index kept so old formats keep loading.

Run once per format version; never regenerate an existing version's folder.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa

import hqi

if __name__ == "__main__":
    x = np.arange(48, dtype=np.float32).reshape(12, 4) / 10
    attrs = pa.table(
        {
            "genre": ["jazz", "rock", "pop"] * 4,
            "year": pa.array(range(1990, 2002), pa.int64()),
            "tags": pa.array([["a"], [], None] * 4, pa.list_(pa.string())),
        }
    )
    hqi.build(x, attrs, ids=np.arange(100, 112)).save(Path(__file__).parent / "v1")
