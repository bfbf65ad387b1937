"""Steps of a workflow: what to check, whether it is done, and what was recorded."""
