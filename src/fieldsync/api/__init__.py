"""The `api` service: the HTTP edge (auth, users, organizations, buildings, files)."""
