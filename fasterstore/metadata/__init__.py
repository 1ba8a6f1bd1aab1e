"""The metadata store: one interface (L{fasterstore.metadata.store}), its backends, their behaviour suite."""
