"""`tact bench`: Tact against the raw Kafka client, on the embedded broker, in one run.

1. Pre-load profiles, events and candidates for M customers into the input topics.
2. pipe:    a plain aiokafka consume -> produce loop moves the same records (pipe.py).
3. engine:  a Tact worker process decides them all (policy, RocksDB state, changelog, decisions
            and outbound topics), timed from its first owning partitions to its last record.
4. latency: candidates produced at half the engine's peak rate (or --latency-rate), produce ->
            outbound visible; then the same load through the plain loop (latency.py).
5. burst:   one customer gets --burst candidates at once while the latency load goes on for
            the others: their latency meanwhile, and how long the burst takes (latency.py).
6. core:    the pure policy core alone, and the worker's own work per record, stage by stage,
            in this process (stages.py); deciding for customers with a long history
            (history.py).
The run is in run.py, the printed table and --json keys in report.py.
"""
