"""Buildings: what technicians inspect, and who is assigned to them."""
