"""Workflow templates: the steps a new workflow starts with."""
