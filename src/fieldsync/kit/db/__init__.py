"""Database kit: engines, sessions, the entity mixin, repositories and migrations."""
