"""The messaging kit: the only code in fieldsync that talks to nats-py.

- `Router` collects typed request-reply handlers for one queue group.
- `Bus` connects, serves routers, and sends requests with deadlines.
- `JetStream` declares streams and consumers from code and publishes durably.
"""

from fieldsync.kit.messaging.bus import Bus
from fieldsync.kit.messaging.jetstream import ConsumerSpec, JetStream, StreamSpec
from fieldsync.kit.messaging.router import MessageContext, Router

__all__ = ["Bus", "ConsumerSpec", "JetStream", "MessageContext", "Router", "StreamSpec"]
