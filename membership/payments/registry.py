"""Which payment providers this installation offers: those whose settings are present.

Each adapter module registers a factory `factory(settings) -> PaymentProvider | None` (None: not
configured). With no provider configured, online payment is simply not offered.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from membership.core.settings import Settings
from membership.payments.base import PaymentProvider

Factory = Callable[[Settings], "PaymentProvider | None"]
_FACTORIES: dict[str, Factory] = {}
# The adapters Samiti ships; loaded on first use, so every caller (checkout, refunds, the auto-renewal
# job in the scheduler process) sees them whatever it imported first.
BUILTIN_ADAPTERS = ("membership.payments.stripe", "membership.payments.sslcommerz")


def _load_builtin() -> None:
    for module in BUILTIN_ADAPTERS:
        importlib.import_module(module)


def register_adapter(name: str, factory: Factory) -> None:
    """Make a provider adapter known (its module calls this; tests may register a fake)."""
    _FACTORIES[name] = factory


def unregister_adapter(name: str) -> None:
    _FACTORIES.pop(name, None)


def available_providers(settings: Settings) -> dict[str, PaymentProvider]:
    """The configured providers, by name, in registration order."""
    _load_builtin()
    found = {}
    for name, factory in _FACTORIES.items():
        provider = factory(settings)
        if provider is not None:
            found[name] = provider
    return found


def get_provider(settings: Settings, name: str) -> PaymentProvider | None:
    """The named provider if it is configured here, else None."""
    _load_builtin()
    factory = _FACTORIES.get(name)
    return factory(settings) if factory else None
