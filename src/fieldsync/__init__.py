"""fieldsync: a self-hosted backend for offline-first field apps."""

__version__ = "0.1.0"
