"""Search: backend interface, engine-independent queries, backends, the outbox indexer."""
