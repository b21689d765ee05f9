"""A template's own SMS budget: ``sms_policy`` (parts, overflow, transliteration).

The ``sns`` section of the service configuration gives every SMS a default budget
(``max_segments``, ``overflow``, ``transliterate``: :class:`router.sms.SmsPolicy`, applied
by the SMS channel before publishing). A template may set its own::

    templates:
      crisis-outage:
        sms_policy: {max_segments: 1, overflow: fail, transliterate: true}
        sms:
          fr: {text: "..."}

The template's policy is applied when its SMS is rendered (:meth:`TemplateSmsPolicy.fit`,
through :func:`router.sms.fit`): the text is folded to GSM-7 when asked, then cut with an
ellipsis at a word boundary (``truncate``, the default) or refused (``fail``: the
delivery is recorded as failed, permanently, with the reason). The outbox stores the
fitted text, so the channel's own policy finds it within budget. With ``overflow:
fail``, ``tocsin rules check`` also renders every locale of the template's SMS with
representative sample data (:func:`router.rules.sms_samples.sample_overflows`) and fails
when one is over budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from router.sms import SmsPolicy, fit
from router.strict import Strict

__all__ = ["SmsPolicyModel", "TemplateSmsPolicy"]

#: The most parts a concatenated SMS can have (the budget when a policy sets none).
MAX_PARTS = 255
Overflow = Literal["truncate", "fail"]


class SmsPolicyModel(Strict):
    """``sms_policy`` of a template (every key optional; at least one given)."""

    max_segments: int | None = Field(default=None, ge=1, le=10)
    overflow: Overflow | None = None
    transliterate: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SmsPolicyModel:
        if self.max_segments is None and self.overflow is not None:
            raise ValueError("'overflow' needs 'max_segments' (the number of parts it "
                             "applies to)")
        if self.max_segments is None and self.transliterate is None:
            raise ValueError("an empty sms_policy: give max_segments (with overflow), "
                             "transliterate, or both")
        return self


@dataclass(frozen=True, slots=True)
class TemplateSmsPolicy:
    """The compiled ``sms_policy``: ``None`` fields leave the channel's default in force."""

    max_segments: int | None = None
    overflow: Overflow = "truncate"
    transliterate: bool = False

    @classmethod
    def from_model(cls, model: SmsPolicyModel) -> TemplateSmsPolicy:
        """Compile a validated ``sms_policy``."""
        return cls(max_segments=model.max_segments, overflow=model.overflow or "truncate",
                   transliterate=bool(model.transliterate))

    def fit(self, text: str) -> str:
        """``text`` folded and fitted to the budget; raise SmsOverflowError for ``fail``."""
        policy = SmsPolicy(max_segments=self.max_segments or MAX_PARTS,
                           overflow=self.overflow, transliterate=self.transliterate)
        body, _info = fit(text.strip("\n"), policy)
        return body + "\n"

    def describe(self) -> str:
        """``max_segments 1, overflow: fail, transliterate`` (for messages)."""
        parts = []
        if self.max_segments is not None:
            parts.append(f"max_segments {self.max_segments}, overflow: {self.overflow}")
        if self.transliterate:
            parts.append("transliterate")
        return ", ".join(parts)
