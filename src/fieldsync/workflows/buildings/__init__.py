"""Following the api's buildings: a default workflow per building, cleanup on delete."""
