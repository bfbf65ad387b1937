"""WatermelonDB's sync wire format (`synchronize()`), served by the native sync engine.

- `cursor.py`: the integer `last_pulled_at`/`timestamp` and the replica version it names.
- `schemas.py`: the query parameters and the pushed changes object.
- `pull.py`: the changes in scope after a cursor, as WatermelonDB applies them.
- `push.py`: a changes object turned into native mutations, all or nothing.
- `endpoints.py`: `GET` and `POST /api/v1/sync/watermelon`.
"""
