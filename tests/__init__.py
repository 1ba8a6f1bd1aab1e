"""FasterStore tests, run with trial."""
