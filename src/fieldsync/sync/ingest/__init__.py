"""Ingestion: CHANGES into the replica, in order, one active ingester."""
