"""router.errors: one exception tree; a provider's answer is never kept whole."""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import adapters
import router
from router import errors
from router.errors import (
    EXCERPT_CHARS,
    BrokerError,
    DeliveryError,
    InternalError,
    KafkaMessageError,
    MatcherParseError,
    PayloadError,
    RegexParseError,
    StoreClosedError,
    StoreError,
    TocsinError,
    UserError,
    WebhookPayloadError,
    excerpt,
)


def test_short_text_is_kept_on_one_line() -> None:
    """Whitespace runs and control characters become single spaces."""
    assert excerpt("  bad\r\n\tVAPID\x00 key \x1b[31m ") == "bad VAPID key [31m"


def test_long_text_is_cut_with_an_ellipsis() -> None:
    """Longer than the limit: cut to the limit, ending with an ellipsis."""
    cut = excerpt("<html>" + "x" * 5000)
    assert len(cut) == EXCERPT_CHARS
    assert cut.endswith("…") and cut.startswith("<html>x")
    assert excerpt("abcdef", limit=4) == "abc…"


# -- the tree ----------------------------------------------------------------------------

#: Exceptions defined outside router/errors.py, each with the reason it must stay there.
ELSEWHERE: dict[str, str] = {
    "router.sms.SmsOverflowError": "it carries a router.sms.SmsInfo, and router.errors "
    "imports nothing of router (it is the leaf every module may import)",
}


def _all_modules() -> list[ModuleType]:
    modules = []
    for package in (router, adapters):
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            modules.append(importlib.import_module(info.name))
    return modules


def _defined_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of router/ or adapters/."""
    found: dict[str, type[BaseException]] = {}
    for module in _all_modules():
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__.split(".")[0] in ("router", "adapters")):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def _name(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_exception_is_a_tocsin_error() -> None:
    """Every exception class defined in router/ and adapters/ is under TocsinError."""
    outside = [_name(c) for c in _defined_exceptions() if not issubclass(c, TocsinError)]
    assert outside == []


def test_every_exception_is_defined_in_router_errors() -> None:
    """Exceptions live in router/errors.py, except the few allowed elsewhere with a reason."""
    classes = _defined_exceptions()
    assert len(classes) > 20  # the walk did import the modules
    elsewhere = sorted(_name(c) for c in classes if c.__module__ != "router.errors")
    assert elsewhere == sorted(ELSEWHERE)


def test_the_docstring_draws_the_whole_tree() -> None:
    """router.errors' docstring names every exception, indented under its parent."""
    tree = (errors.__doc__ or "").split("The tree::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, int] = {}
    for line in tree.splitlines():
        match = re.match(r"^ {4}([│├└─ ]*)([A-Z][A-Za-z]+)\b", line)
        if match:
            drawn[match.group(2)] = len(match.group(1))
    documented = {c.__name__ for c in _defined_exceptions()}
    assert set(drawn) == documented
    by_name = {c.__name__: c for c in _defined_exceptions()}
    order = list(drawn)
    for i, name in enumerate(order[1:], start=1):
        depth = drawn[name]
        parent = next(p for p in reversed(order[:i]) if drawn[p] < depth)
        assert by_name[parent] in by_name[name].__bases__, (name, parent)


def test_user_errors_are_apart_from_delivery_store_and_internal_errors() -> None:
    """The branches do not overlap: a user error is never taken for a failure of Tocsin."""
    branches = [UserError, DeliveryError, BrokerError, StoreError, InternalError]
    for cls in _defined_exceptions():
        if cls is TocsinError:
            continue
        assert sum(issubclass(cls, b) for b in branches) == 1, _name(cls)
    assert issubclass(WebhookPayloadError, PayloadError)
    assert issubclass(KafkaMessageError, PayloadError)
    assert issubclass(RegexParseError, MatcherParseError)


def test_old_import_places_still_work() -> None:
    """Modules that defined an exception still export it, as the same class."""
    from adapters.alertmanager import WebhookPayloadError as from_adapter
    from adapters.registry import PublishError as from_registry
    from router.http.query import BadQuery as from_query
    from router.rules.matchers import MatcherParseError as from_matchers

    assert from_adapter is WebhookPayloadError
    assert from_registry is errors.PublishError
    assert from_query is errors.BadQuery
    assert from_matchers is MatcherParseError


def test_payload_errors_carry_their_http_answer() -> None:
    """A bad query parameter or subscription is a 400 with its location, like any payload."""
    bad = errors.BadQuery("limit", "must be an integer")
    assert (bad.status, bad.location, str(bad)) == (400, "query.limit",
                                                     "query parameter limit must be an integer")
    assert errors.SubscriptionError("subscription.keys missing").status == 400


def test_a_closed_store_is_a_store_error_and_still_a_runtime_error() -> None:
    """StoreClosedError keeps the RuntimeError callers caught before the tree existed."""
    assert issubclass(StoreClosedError, StoreError)
    assert issubclass(StoreClosedError, RuntimeError)
