"""audit feature of the api service."""
