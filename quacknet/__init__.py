"""QuackNet: crowdsourced network intelligence — ingest API, Kafka, ClickHouse loader, Airflow operations."""
