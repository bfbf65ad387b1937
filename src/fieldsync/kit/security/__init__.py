"""Access tokens (EdDSA JWTs) and the keys that sign and verify them."""
