"""`make chaos SEED=n [DURATION=s]`: a standing fault schedule under load, and a checker.

The pieces, each in its own module:
  schedule.py  pure: the faults drawn from the seed (what, when, for how long); printable
  faults.py    the injector: SIGKILL, SIGSTOP/SIGCONT, SIGTERM and restart of each service
               replica, of the Kafka broker and of PostgreSQL; a supervisor that restarts a
               service that exited on its own (and counts it: that is a failure)
  load.py      the fixed-rate load: the benchmark's synthetic population with duplicates,
               late facts, retractions, conflicting duplicates and malformed records;
               contract versions; clock ticks; a finance office that settles payments
  checker.py   the invariants, checked after the load stops and the system drains, each
               against an oracle that does not trust the services (the pure engine, the
               topics, a rebuild into a separate database)
  run.py       the orchestration and the command line

Nothing here is a unit of the product: it starts its own Kafka and PostgreSQL on free
ports, runs the real services as processes, and reuses the benchmark's load generator
(`bench/run.py`), the process helpers (`shared/platform/processes.py`, `shared/platform/stack.py`) and the
services' own pure cores as oracles.
"""
