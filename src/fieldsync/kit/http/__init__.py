"""HTTP building blocks: the app factory, middleware, problem responses and health."""
