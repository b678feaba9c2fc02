"""The events seam: services say what changed or was read, subscribers (metrics, the webhook
outbox) react. See types.py for what an event holds, dispatch.py for delivery."""

from registry.events.dispatch import Dispatcher, Subscriber
from registry.events.types import Action, AnyEvent, CollectionFinished, Event, Target

__all__ = ["Action", "AnyEvent", "CollectionFinished", "Dispatcher", "Event", "Subscriber", "Target"]
