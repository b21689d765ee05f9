"""Masking of personal data (phone numbers, e-mail addresses, names) for logs and the API."""

from __future__ import annotations

__all__ = ["mask_address", "mask_email", "mask_name", "mask_phone"]


def mask_email(address: str) -> str:
    """``alice.martin@example.com`` → ``a***@e***.com``."""
    local, sep, domain = address.partition("@")
    if not sep:
        return _mask_token(address)
    host, dot, tld = domain.rpartition(".")
    masked_domain = f"{_mask_token(host)}{dot}{tld}" if dot else _mask_token(domain)
    return f"{_mask_token(local)}@{masked_domain}"


def mask_phone(number: str) -> str:
    """``+33612345678`` → ``+336******78``: country code and last two digits stay."""
    digits = number.strip()
    if len(digits) <= 5:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]


def mask_address(address: str) -> str:
    """Mask whatever kind of address this is (email, phone, or an opaque id)."""
    if "@" in address:
        return mask_email(address)
    if address.startswith("+") and address[1:].isdigit():
        return mask_phone(address)
    if address.startswith("arn:"):
        return address  # topic ARNs are not personal data
    return _mask_token(address)


def mask_name(name: str) -> str:
    """``Alice Martin`` → ``A. M.``: a person's name reduced to its initials."""
    return " ".join(f"{part[0]}." for part in name.split() if part)


def _mask_token(token: str) -> str:
    if not token:
        return token
    return token[0] + "***"
