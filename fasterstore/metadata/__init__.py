"""The metadata engine: in-memory indexes made durable by a WAL and snapshots."""
