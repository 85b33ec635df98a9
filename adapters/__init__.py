"""I/O adapters: Postgres (every SQL statement of the platform), Kafka, Redis, the payment
provider. Layers: domain < core < adapters < consumers < actors, serve_app < cluster."""
