"""Push: clients' offline mutations, checked here and applied by the owning services."""
