"""The pure policy core: no I/O, no clocks, no Kafka. Same code live and in replay."""
