"""What a contact of a file carries: attributes, tags, the channels it accepts."""

from __future__ import annotations

from router.incidents.flush import recipient_address
from router.models import NO_ATTRIBUTES, Attributes, Contact


def test_attributes_are_a_read_only_hashable_mapping() -> None:
    """Attributes read like a dict, compare with one, and keep a contact hashable."""
    attrs = Attributes(("plan", "service"), ("gold", "payments"))
    assert attrs["plan"] == "gold" and attrs.get("nope") is None
    assert dict(attrs) == {"plan": "gold", "service": "payments"} and len(attrs) == 2
    assert attrs == {"plan": "gold", "service": "payments"}
    contact = Contact(id="a", name="A", email="a@example.com", attributes=attrs)
    assert hash(contact) == hash(Contact(id="a", name="A", email="a@example.com",
                                         attributes=Attributes(("plan", "service"),
                                                               ("gold", "payments"))))
    assert Contact(id="b", name="B").attributes is NO_ATTRIBUTES


def test_the_channels_column_limits_where_a_contact_is_reached() -> None:
    """channels {email}: no SMS nor push even with a phone; None: every address."""
    everywhere = Contact(id="a", name="A", email="a@example.com", phone="+33612345678")
    assert recipient_address(everywhere, "sms") == "+33612345678"
    email_only = Contact(id="a", name="A", email="a@example.com", phone="+33612345678",
                         channels=frozenset({"email"}))
    assert recipient_address(email_only, "email") == "a@example.com"
    assert recipient_address(email_only, "sms") is None
    assert recipient_address(email_only, "push") is None
