"""Pull: the changes in the caller's scope after a checkpoint."""
