"""Mutations clients pushed through sync (`workflows.apply`): workflows and their steps."""
