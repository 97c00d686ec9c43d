"""A service hall simulated from event to event, with the real calling rule: the engine
(`hall.py`), the hall the benchmark and the tests run (`default_hall.py`), the best possible
wait estimate (`oracle.py`), the classic baselines (`baselines.py`) and queueing formulas
(`queueing.py`). Pure: no database, no I/O (docs/estimate.md)."""
