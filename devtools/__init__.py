"""The QuackNet development tooling: the local stack (supervisor, Kafka launcher, the ClickHouse
gateway, the local Airflow), synthetic scans, the soak run. Never installed, never imported by
the product (a test holds it to that); it imports the product freely."""
