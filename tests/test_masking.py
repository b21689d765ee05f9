"""Personal data is masked before it reaches logs or the API."""

from __future__ import annotations

from router.masking import mask_address, mask_email, mask_phone


def test_mask_email_keeps_only_initials_and_tld() -> None:
    assert mask_email("alice.martin@example.com") == "a***@e***.com"


def test_mask_phone_keeps_country_prefix_and_last_two_digits() -> None:
    assert mask_phone("+33612345678") == "+336******78"


def test_mask_address_dispatches_on_shape() -> None:
    assert mask_address("bob@ex.org") == "b***@e***.org"
    assert mask_address("+14155550100") == "+141******00"
    assert mask_address("arn:aws:sns:us-east-1:123:ops") == "arn:aws:sns:us-east-1:123:ops"


def test_names_are_reduced_to_initials() -> None:
    """A person's name in the API and in erased history: initials only."""
    from router.masking import mask_name

    assert mask_name("Alice Martin") == "A. M."
    assert mask_name("Zoé") == "Z."
    assert mask_name("  ") == ""
