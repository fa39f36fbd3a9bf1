"""Output adapters: InfluxDB (v1 and v2 write APIs) and the Kafka alert topic."""
