"""users feature of the api service."""
