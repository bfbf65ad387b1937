"""The platform kit: settings, logging, errors, ids, database, messaging and HTTP building blocks.

Every service builds on this package; it never imports a service.
"""
