"""The keeper daemon: indexer, store, facilitator, jobs, operator API."""
