"""The Kafka -> ClickHouse loader (consumer group ``clickhouse-loader``)."""
