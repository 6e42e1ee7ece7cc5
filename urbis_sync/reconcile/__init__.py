"""Reconciliation: a layer table made equal to its source, feature by feature, with history.

One module a phase, in the order a run goes through them:

- `staging`: the run's scratch tables, the live fingerprints nothing matched, the incoming view;
- `first_load`: a first load streamed into the layer's next table, typed and indexed;
- `shape`: the incoming layer's column and geometry types, and its drift from the live one;
- `duplicates`: features whose key occurs twice, quarantined;
- `apply`: the one transaction that makes the live layer the new state, by
  - `diff` (deletes, updates and inserts by key, in place) or
  - `rebuild` (a new table swapped in, on drift or a first load),
  - `history` (the superseded rows) and `catalog_write` (the layer as it now is);
- `tables`: the names of a run's tables and the SQL helpers the phases share.

Functions take a connection and never commit; `urbis_sync.run` owns the transactions.
"""
