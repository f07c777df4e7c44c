"""Where hqi's compiled kernels go: nowhere by default, ``$HQI_CACHE_DIR`` when set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hqi

# Import the kernels and run a search (which compiles more of them); print the
# top-k kernel's cache statistics.
_SCRIPT = """
import json, numpy as np, hqi
from hqi.execution.kernels import push_scores
from hqi.datasets import make_catalog, make_workload
c = make_catalog(70000, 8, seed=3)
w = make_workload(c, 50, seed=4)
index = hqi.build(c.vectors, c.attributes, workload=w.filters, threads=1)
index.search(w.queries, w.filters, k=5, nprobe=2, threads=1)
s = push_scores.stats
print(json.dumps({"path": s.cache_path, "hits": sum(s.cache_hits.values())}))
"""


def _run(env_dir: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HQI_CACHE_DIR"}
    if env_dir is not None:
        env["HQI_CACHE_DIR"] = env_dir
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return {"out": json.loads(proc.stdout.strip().splitlines()[-1]), "err": proc.stderr}


def _kernel_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc")]


def test_kernels_are_cached_only_where_asked(tmp_path: Path) -> None:
    package = Path(hqi.__file__).parent
    before = set(_kernel_files(package))
    plain = _run(None)["out"]
    assert plain["hits"] == 0 and plain["path"] is None
    cache = tmp_path / "kernels"
    first = _run(str(cache))["out"]
    assert first["hits"] == 0 and Path(first["path"]).is_relative_to(cache)
    assert _kernel_files(cache)  # written there ...
    second = _run(str(cache))["out"]
    assert second["hits"] == 1  # ... and loaded by the next process
    assert set(_kernel_files(package)) == before  # never beside hqi's sources


def test_an_unwritable_cache_folder_warns_and_caches_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = _run(str(blocker / "kernels"))
    assert run["out"]["path"] is None and run["out"]["hits"] == 0
    assert "HQI_CACHE_DIR" in run["err"] and "cannot be written" in run["err"]
