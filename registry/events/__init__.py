"""The events seam: services say what changed or was read, subscribers (metrics, later the webhook
outbox, the lifecycle collector) react. See types.py for what an event holds, dispatch.py for delivery."""

from registry.events.dispatch import Dispatcher, Subscriber
from registry.events.types import Action, Event, Target

__all__ = ["Action", "Dispatcher", "Event", "Subscriber", "Target"]
