"""Workflows over HTTP: the api forwards to the workflows service over NATS."""
