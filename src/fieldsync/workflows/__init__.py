"""The workflows service: workflow templates, workflows and their steps, over NATS only.

- `service.py`: the ServiceSpec (migrations, background tasks).
- `workflows/`, `steps/`: NATS handlers, use cases (the state machine), SQL, models.
- `mutations/`: `workflows.apply`, the mutations clients pushed through sync.
- `templates/`: the default template each organization gets on first use.
- `buildings/`: follows the api's building changes on CHANGES.
- `changes.py`: Change records into the outbox, and the outbox relay task.
- `access.py`: organization, building scope and role of a request.
- `state.py`: the database and id generator bound for the handlers.

Subjects and request/reply models are in `fieldsync.contracts.workflows`.
"""
