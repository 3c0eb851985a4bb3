"""The benchmark harness: specs of cells, executors that run them, a results store, and reports.

Running: `spec` (a spec file into cells) -> `cell` (one cell, a pure function) -> `runner`
(executors, resume) -> `store` (SQLite, schema versions).

Reporting, in layers that only import downwards:
`rows` (what a stored cell means: problems, passes, best so far, area under a curve, the reference
value) -> `tables` (cell text, Markdown, CSV), `export` (tidy CSV, IOHprofiler) -> `plots` (every
figure, through matplotlib's Figure API) -> `metrics` (per-cell numbers, medians), `anytime`
(fixed-target and fixed-budget views), `stats` (paired tests), `analysis` (studies' scores) ->
`comparison` (all views of a set of cells, written) -> `html_report` -> `report` (everything into
one folder).
"""
