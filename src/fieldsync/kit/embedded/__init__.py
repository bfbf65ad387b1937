"""Real PostgreSQL and NATS servers from wheels, for `fieldsync up` and the test suite."""
