"""Knowledge graphs in, related queries out: the KG front end of hqi.

- :func:`ingest` turns triples + an entity table + embeddings into a catalog,
  driven by a declarative TOML mapping (:mod:`hqi.kg.mapping`);
- :func:`build_kg` builds an hqi index from it, its layout learned from a
  past query log when one is given;
- :func:`related` answers the HQI task: for each past query (an anchor and a
  template), the k nearest entities that satisfy the template at the anchor,
  each the anchor of a new, related query (:mod:`hqi.kg.related`);
- :mod:`hqi.kg.presets` ships the mapping and templates for FB15k-237.

The command line is ``hqi kg build`` and ``hqi kg related``.
"""

from __future__ import annotations

from typing import Any

from hqi.kg.ingest import IngestReport, KnowledgeGraph, ingest
from hqi.kg.mapping import Mapping, load_mapping, parse_mapping
from hqi.kg.related import RelatedQueries, read_log, related, sample_log, workload_from_log
from hqi.kg.templates import Template, load_templates

__all__ = [
    "IngestReport",
    "KnowledgeGraph",
    "Mapping",
    "RelatedQueries",
    "Template",
    "build_kg",
    "ingest",
    "load_mapping",
    "load_templates",
    "parse_mapping",
    "read_log",
    "related",
    "sample_log",
    "workload_from_log",
]


def build_kg(
    kg: KnowledgeGraph,
    *,
    metric: str = "cosine",
    log: Any = None,
    templates: Any = None,
    **options: Any,
) -> Any:
    """Build an :class:`hqi.Index` from an ingested graph.

    With a past query ``log`` (and its ``templates``), the layout is learned
    from the log's filters, so the related-queries batch touches few
    partitions. ``options`` go to :func:`hqi.build`.
    """
    from hqi.api import build

    if log is not None:
        options["workload"] = workload_from_log((kg.ids, kg.attributes), log, templates)
    return build(kg.vectors, kg.attributes, ids=kg.ids, metric=metric, **options)
