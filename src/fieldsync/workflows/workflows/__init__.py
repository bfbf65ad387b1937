"""Workflows: one piece of work on one building, and its state machine."""
