"""Probable duplicate customers: when two company records are taken to be one company, whatever the ERP.

Finance's rule for customer master sync: a CRM account and an ERP customer are probably the same company
when their normalized names are equal *and* they share a tax id or a web domain. A name alone is too weak
(two "Acme LLC"s in two states), a tax id or a domain alone too (a group's subsidiaries share a domain).

- `normalize_company_name`: casefolded, accents stripped, punctuation dropped, trailing legal forms
  (``LLC``, ``L.L.C.``, ``Inc``, ``GmbH``, ...) removed, whitespace collapsed;
- `web_domain`: the host of a URL or bare domain, lowercased, without a leading ``www.``;
- `normalize_tax_id`: uppercase letters and digits only (``04-7654321`` and ``047654321`` are one id);
- `is_probable_duplicate`: the rule itself, answering why (``name+tax_id`` or ``name+domain``) or None.

Functions are pure: adapters narrow the candidates in their vendor's query language and confirm each here,
so every ERP applies the same rule.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Protocol
from urllib.parse import urlsplit

__all__ = [
    "LEGAL_FORMS",
    "REASON_DOMAIN",
    "REASON_TAX_ID",
    "CompanyIdentity",
    "is_probable_duplicate",
    "normalize_company_name",
    "normalize_tax_id",
    "web_domain",
]

REASON_TAX_ID: Final = "name+tax_id"
REASON_DOMAIN: Final = "name+domain"

#: Legal-form words dropped from the end of a name, as they read once punctuation is gone ("L.L.C." is
#: "llc", "S.A." is "sa"). Only trailing ones: "Co" starts "Co-operative Bank" and stays there.
LEGAL_FORMS: Final = frozenset(
    {
        "llc",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "ltd",
        "limited",
        "plc",
        "llp",
        "lp",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "bv",
        "nv",
        "srl",
        "pty",
    }
)

# Marks inside a word (abbreviation dots, apostrophes) vanish, so "L.L.C." is "llc" and "O'Neill" is
# "oneill"; every other punctuation mark or symbol separates words, so "A&B" and "A & B" read the same.
_JOINING_MARKS = frozenset(".'`\u2018\u2019\u02bc")
_TAX_ID_NOISE = re.compile(r"[^0-9A-Za-z]")
_HOST = re.compile(r"[^\s/@]+\.[^\s/@.]+")


class CompanyIdentity(Protocol):
    """What the rule reads of a record: a CRM account, an ERP customer or a match query."""

    @property
    def name(self) -> str: ...

    @property
    def tax_id(self) -> str | None: ...

    @property
    def website(self) -> str | None: ...


def normalize_company_name(name: str) -> str:
    """``name`` reduced to what tells companies apart: "Wayne Capital Partners, L.L.C." and "wayne capital
    partners LLC" both become ``wayne capital partners``; "Müller & Söhne AG" becomes ``muller sohne``.

    Trailing legal forms are dropped repeatedly ("Acme Pty Ltd" is ``acme``) but never the last word, so a
    name that is only a legal form does not become empty and equal to every other such name.
    """
    chars: list[str] = []
    for char in unicodedata.normalize("NFKD", name.casefold()):
        category = unicodedata.category(char)
        if char in _JOINING_MARKS or category.startswith("M"):  # M*: the accents NFKD split off
            continue
        chars.append(char if category[0] in "LN" else " ")
    words = "".join(chars).split()
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        words.pop()
    return " ".join(words)


def web_domain(url_or_domain: str | None) -> str | None:
    """The web domain of a website as people type it: ``https://www.Wayne-Capital.example/about``,
    ``http://wayne-capital.example:8080/`` and ``wayne-capital.example`` all give ``wayne-capital.example``.
    None when there is no host in it (empty, free text, an e-mail address)."""
    if url_or_domain is None:
        return None
    text = url_or_domain.strip()
    if not text:
        return None
    if "://" not in text:
        if "@" in text:
            return None  # an e-mail address, not a website
        text = "//" + text  # a bare domain: parse it as the host part
    try:
        host = urlsplit(text).hostname
    except ValueError:  # e.g. an unbalanced "[" taken for an IPv6 literal
        return None
    if not host:
        return None
    host = host.rstrip(".").removeprefix("www.")
    return host if _HOST.fullmatch(host) else None


def normalize_tax_id(tax_id: str | None) -> str | None:
    """Uppercase ASCII letters and digits only (``gb 123.456-789`` is ``GB123456789``); None if none."""
    if tax_id is None:
        return None
    return _TAX_ID_NOISE.sub("", tax_id).upper() or None


def is_probable_duplicate(candidate: CompanyIdentity, existing: CompanyIdentity) -> str | None:
    """Why ``existing`` is probably the same company as ``candidate`` (``"name+tax_id"`` or
    ``"name+domain"``), or None: normalized names equal and a tax id or a web domain in common."""
    name = normalize_company_name(candidate.name)
    if not name or name != normalize_company_name(existing.name):
        return None
    tax_id = normalize_tax_id(candidate.tax_id)
    if tax_id is not None and tax_id == normalize_tax_id(existing.tax_id):
        return REASON_TAX_ID
    domain = web_domain(candidate.website)
    if domain is not None and domain == web_domain(existing.website):
        return REASON_DOMAIN
    return None
