"""`python -m bench.chaos`: Parley under faults, as real processes on loopback (issue 17).

Redis (Valkey, AOF), two API processes, two workers, an SMTP sink and a load client run as separate
processes; the harness kills and restarts them at seeded moments while the client posts notifications
and responses, then checks what reached the sink and the outbox against what the API says.
See docs/reliability.md. `bench.chaos.run.run` is the entry point the tests call.
"""
