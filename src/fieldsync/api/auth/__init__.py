"""auth feature of the api service."""
