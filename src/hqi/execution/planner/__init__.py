"""Plan a batch: route every filter, choose a strategy, list the probes.

For each distinct filter of the batch (evaluated once, shared by its queries):

1. *Route* it with the partitions' zone maps: partitions where it cannot be
   TRUE are skipped; where it is TRUE for every row it is *covered* (no row
   filter); elsewhere it is *partial*, and the filter is evaluated on that
   partition's rows, giving a mask (and the exact count of qualifying rows,
   which also drops partitions the zone maps could not rule out). Masks are
   slices of one whole-store mask per filter, built from atom masks shared
   across the batch (:class:`~hqi.query.evaluate.BatchEvaluator`). A
   selective filter (few candidate rows in a string column's inverted
   index) is evaluated on those rows only; its qualifying rows are counted
   per partition by binary search and, if it is prefiltered, kept for the
   gather (``FilterPlan.row_ids``) instead of masks.
2. *Choose a strategy* by estimated cost, in distance computations:
   ``scan`` probes lists of the routed partitions (on the exact path all
   those where the lists' zone maps say the filter may hold), reading rows
   in place; ``prefilter`` gathers just the
   qualifying rows and scans them all, exactly. For a filter of one query a
   gathered row costs about ``prefilter_ratio`` times a row scanned in place
   inside a large matrix product, so prefilter wins when
   ``qualifying * ratio <= scan work`` (the rule of MicroNN and ACORN's cost
   models). The gather is shared by the filter's queries and the distances
   are not, so on the exact path a filter of ``n`` queries uses
   ``ratio = 1 + (prefilter_ratio - 1) / n`` (:func:`gather_ratio`; 1M exact
   batch: rows scanned per query 194,712 -> 124,713, time -12%).
   ``bench/calibrate.py`` measures the kernel-level ratio on this machine:
   about 10 when one query uses the gathered rows, 3 for four, 1 for
   hundreds. In a whole search a scanned row is shared by the many queries
   of its cell; the default, 100, is from whole exact searches at 1M, 200k
   and on real data (see ``SearchOptions``).
3. *Probe*: exact: every routed partition, whole, less the lists where the
   lists' zone maps say the filter cannot hold (``BatchPlan.list_may``; the
   k-means lists follow the attributes the vectors correlate with). Otherwise *global
   probing*: each query ranks all lists of its routed partitions by centroid
   distance (one GEMM of the batch against all centroids) and probes the
   nearest ``nprobe`` (FAISS's meaning of nprobe), or more, in the same
   order, until the lists hold an expected ``expected_hits * k`` qualifying
   rows (a list's expected qualifying rows: its size times its partition's
   qualifying fraction), and at least every list within ``probe_ratio`` of
   the nearest one's distance (:func:`.probing._ratio_bounds`: a query near the
   border of several lists probes them all, one deep inside a list only
   ``nprobe``). So a selective filter reaches far enough to find
   its neighbours, and a partition far from the query costs nothing.
   Filters routed to the same partitions rank their queries together, in
   one partial sort; sets of few queries are all ranked at once, over the
   union of their lists (those outside a query's partitions at ``+inf``).

*Estimated routing* (approximate search): evaluating a filter on all rows of
its partial partitions is most of a plan's cost (about 2 ns a row, hundreds
of thousands of rows per filter at N = 1M), yet its queries probe a few
lists. So the planner first evaluates the filter on a fixed row sample
(:class:`RowSample`, every 32nd row) and estimates its qualifying rows per
partition. When the estimate rests on enough sample hits and the filter will
clearly be scanned (not prefiltered), probing runs on the estimates and the
filter is then evaluated only on the lists its queries probe
(:func:`.routing.mask_probed`); bits of lists nobody probes are never computed or
read. Those masks also drop the probes of lists where none of the filter's
rows qualify (they could only add +inf) and need no mask where all do.
Otherwise (selective filters, exact search) the filter is counted exactly
as in step 1. ``FilterPlan.estimated`` and ``explain`` say which. The
filters that compile to programs (below) are counted on the sample all at
once, before the per-filter pass, in one compiled loop over their partial
partitions' sample rows (:func:`.estimates.sample_hits`; 1M batch: 0.17 s -> 0.03 s),
and their estimates, costs and choices are computed as arrays over
(program, partition), so a program routed on its estimate costs the
per-filter loop only its :class:`FilterPlan` (1M, nprobe 6: the median
plan 4-14% faster in 5 of 6 alternating runs, the same plans).

*Compiled filters*: a filter that compiles to an interval program
(:mod:`hqi.query.compiled`: conjunctive normal form, every template of the
built-in workload; ``list_contains`` on a list column of at most 52 values
is a bit test) gets no masks at all.
The executor's compiled pass tests it on the rows under a query's k-th
distance only, a few hundred per query, where a mask costs every row the
query scans. On the exact path too, such a filter is routed on its estimate
when that says it will be scanned (approximate plans ask for a 2x margin:
"clearly"). The lists' own zone maps (``list_zones``) drop the probes of
lists where it cannot hold, as :func:`.routing.mask_probed` does for masked filters:
all such filters' probed lists are tested in one compiled call
(:meth:`~hqi.layout.zonemap.ZoneMaps.program_flags`; 1M batch: 0.07 s of
per-filter zone maps -> under 0.01 s). Stores too small for a sample
(under ``SAMPLE_MIN_ROWS`` rows), and larger ones whose programs are partial
on few rows in all (``COUNT_ROWS``), count every program exactly instead, on
all rows of its partial partitions, in compiled passes
(:func:`.estimates.count_programs`), and skip the sample and step 1's
per-filter evaluation, their routes, costs and strategies computed as
arrays over the programs; only the filters they prefilter are evaluated,
for their rows (FB15k-237, 816 filters: planning 32 -> 10 ms exact, 36 ->
15 ms at nprobe 3; MovieLens: 34 -> 18.5 ms exact, 51 -> 32 ms at nprobe
16; the same answers and recall).

The plan is data (:class:`BatchPlan`); :mod:`.batch` executes it and
``Index.explain`` prints it, so what is explained is what runs.

Modules: :mod:`.plans` (the plan as data), :mod:`.estimates` (the row sample
and the cost of a gather), :mod:`.routing` (a filter's exact route and
masks), :mod:`.probing` (global probing) and :mod:`.planning`
(:func:`plan_batch`, which runs the steps above in order).
"""

from hqi.execution.planner.estimates import RowSample, gather_ratio
from hqi.execution.planner.planning import plan_batch
from hqi.execution.planner.plans import BatchPlan, FilterPlan, Strategy, filter_queries
from hqi.execution.planner.routing import Route

__all__ = [
    "BatchPlan",
    "FilterPlan",
    "Route",
    "RowSample",
    "Strategy",
    "filter_queries",
    "gather_ratio",
    "plan_batch",
]
