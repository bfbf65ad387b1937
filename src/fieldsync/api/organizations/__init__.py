"""organizations feature of the api service."""
