"""The pmaint service: Kafka IO, faust agents, sinks, web endpoints and the CLI."""
