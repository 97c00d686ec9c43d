"""`make bench`: hallq's own benchmark (figures B1-B6 of the project's targets).

`python -m bench` (bench/run.py) starts a PostgreSQL server tuned like a production one, migrates
it, starts several hallq uvicorn processes on loopback ports, and drives them from separate
load-generator processes (bench/load.py). The raw-database reference for B1 and B2 is `pgbench`
running the equivalent SQL transaction against the same server in the same run
(bench/pgbench.py). It prints one table and writes it to bench/results/latest.md.

See docs/performance.md for what each figure means and how to read the results.
"""
