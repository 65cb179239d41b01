"""Errors of the payments domain beyond the provider interface's own (base.py)."""
from __future__ import annotations


class IgnoredNotification(Exception):
    """A notification that is genuine or harmless but that Samiti does not act on (an event type it
    does not handle, an IPN about a failed attempt): answer 200 so the provider stops resending it."""
