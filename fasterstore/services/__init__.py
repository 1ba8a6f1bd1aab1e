"""Long-running background services (snapshots today; compaction, scrub later)."""
