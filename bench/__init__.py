"""`make bench`: hallq's own benchmark (figures B1-B6 of the project's targets).

`python -m bench` (bench/run.py) starts a PostgreSQL server tuned like a production one, migrates
it, starts several hallq uvicorn processes on loopback ports, and drives them from separate
load-generator processes (bench/load.py). The raw-database reference for B1 and B2 is `pgbench`
running the equivalent SQL transaction against the same server in the same run (bench/pg.py,
bench/sql.py). It prints one table and writes it to bench/results/latest.md.

Where things are: bench/run.py runs the figures in turn (bench/plan.py says which and how
long); one module measures each (b1_issue.py, b2_next.py, b3_screens.py for B3 and B4,
b5_history.py, b6_estimate.py) on the run's machinery (harness.py: PostgreSQL, servers, load
generators; accounting.py: CPU and statements per request); report.py makes the table.

See docs/performance.md for what each figure means and how to read the results.
"""
