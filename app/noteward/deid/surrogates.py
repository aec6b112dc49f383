"""Surrogate values: realistic stand-ins derived from a secret, stable within a patient.

Every choice is an HMAC-SHA256 of (patient key, entity type, normalised value) under the
vault's ``deid_secret``, so a re-export gives the same stand-ins and nothing needs to be
stored: the mapping exists only as long as the secret, which never leaves the vault.
Dates move by one per-patient offset (between 1 and 365 days either way), so intervals
between a patient's dates are kept.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
from datetime import date, datetime, timedelta

from noteward.deid.rules import load_lexicons, load_surrogates
from noteward.deid.types import Entity

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MONTH_RX = r"(?P<mon>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_ISO = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?P<rest>.*)$", re.S)
_YMD = re.compile(r"^(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})$")
_NUM = re.compile(r"^(?P<a>\d{1,2})(?P<s>[/.-])(?P<b>\d{1,2})(?:(?P=s)(?P<y>\d{2}|\d{4}))?(?P<rest>\s.*)?$", re.S)
_MY_NUM = re.compile(r"^(?P<m>\d{1,2})/(?P<y>\d{4})$")
_MON_FIRST = re.compile(
    rf"^{_MONTH_RX}(?P<dot>\.?)(?P<sep1>\s+|-)(?P<d>\d{{1,2}})(?P<ord>st|nd|rd|th)?(?P<sep2>,?\s*'?|\s+)?(?P<y>\d{{4}}|\d{{2}})?(?P<rest>.*)$",
    re.I | re.S,
)
_DAY_FIRST = re.compile(
    rf"^(?P<d>\d{{1,2}})(?P<ord>st|nd|rd|th)?(?P<of>\s+of)?(?P<sep1>[\s-]+){_MONTH_RX}(?P<dot>\.?)(?P<sep2>[\s,-]+)?(?P<y>\d{{4}}|\d{{2}})?(?P<rest>.*)$",
    re.I | re.S,
)
_MON_YEAR = re.compile(rf"^{_MONTH_RX}(?P<dot>\.?)(?P<sep>[\s,-]+(?:of\s+)?)(?P<y>\d{{4}})$", re.I)
_MON_ONLY = re.compile(rf"^{_MONTH_RX}$", re.I)
_STREET_END = re.compile(r"(?i)\b(?:st|street|ave|avenue|rd|road|blvd|boulevard|ln|lane|dr|drive|ct|court|way|pl|place|ter|terrace|cir|circle|pkwy|parkway|hwy|highway|pike)\.?$")
_FACILITY = re.compile(r"(?i)hospital|clinic|medical|health|center|centre|infirmary|hospice|care|institute")
_REF_YEAR = 2001  # a non-leap year for dates written without one


def _secret_bytes(secret: bytes | str | None) -> bytes:
    if secret is None:
        return os.urandom(32)
    if isinstance(secret, bytes):
        return secret
    s = secret.strip()
    try:
        return bytes.fromhex(s)
    except ValueError:
        return s.encode("utf-8")


def _case_like(src: str, new: str) -> str:
    if src.isupper() and len(src) > 1:
        return new.upper()
    if src.islower():
        return new.lower()
    return new


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _month_name(src: str, m: int) -> str:
    bare = src.rstrip(".")
    if len(bare) <= 3:
        name = calendar.month_abbr[m]
    elif bare.lower() == "sept":
        name = "Sept" if m == 9 else calendar.month_abbr[m]
    else:
        name = calendar.month_name[m]
    return _case_like(bare, name)


def _year(src: str, y: int) -> str:
    return f"{y % 100:02d}" if len(src) == 2 else f"{y:04d}"


def _full_year(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        n += 2000 if n < 50 else 1900
    return n


def _num(src: str, n: int) -> str:
    return f"{n:0{len(src)}d}" if src.startswith("0") or len(src) == 2 else str(n)


def shift_date(text: str, days: int) -> str | None:
    """``text`` (a date in one of the common clinical forms) moved by ``days``, written the
    same way; None when the form is not understood."""
    t = text.strip()
    try:
        if m := _ISO.match(t):
            d = date(int(m["y"]), int(m["m"]), int(m["d"])) + timedelta(days=days)
            return f"{d.year:04d}-{_num(m['m'], d.month)}-{_num(m['d'], d.day)}{m['rest']}"
        if m := _YMD.match(t):
            d = date(int(m["y"]), int(m["m"]), int(m["d"])) + timedelta(days=days)
            return f"{d.year:04d}/{_num(m['m'], d.month)}/{_num(m['d'], d.day)}"
        if m := _MY_NUM.match(t):
            d = date(int(m["y"]), int(m["m"]), 15) + timedelta(days=days)
            return f"{_num(m['m'], d.month)}/{d.year}"
        if m := _NUM.match(t):
            a, b = int(m["a"]), int(m["b"])
            day_first = a > 12
            mon, day = (b, a) if day_first else (a, b)
            y = _full_year(m["y"]) if m["y"] else _REF_YEAR
            d = date(y, mon, day) + timedelta(days=days)
            first, second = (d.day, d.month) if day_first else (d.month, d.day)
            out = f"{_num(m['a'], first)}{m['s']}{_num(m['b'], second)}"
            if m["y"]:
                out += f"{m['s']}{_year(m['y'], d.year)}"
            return out + (m["rest"] or "")
        if m := _MON_YEAR.match(t):
            d = date(int(m["y"]), _MONTHS[m["mon"].lower()], 15) + timedelta(days=days)
            return f"{_month_name(m['mon'], d.month)}{m['dot']}{m['sep']}{d.year}"
        if m := _MON_ONLY.match(t):
            d = date(_REF_YEAR, _MONTHS[m["mon"].lower()], 15) + timedelta(days=days)
            return _month_name(m["mon"], d.month)
        for rx, mon_first in ((_MON_FIRST, True), (_DAY_FIRST, False)):
            m = rx.match(t)
            if not m:
                continue
            y = _full_year(m["y"]) if m["y"] else _REF_YEAR
            d = date(y, _MONTHS[m["mon"].lower().rstrip(".")], int(m["d"])) + timedelta(days=days)
            day_s = _num(m["d"], d.day) + (_ordinal(d.day) if m["ord"] else "")
            mon_s = _month_name(m["mon"], d.month) + m["dot"]
            year_s = _year(m["y"], d.year) if m["y"] else ""
            sep2 = m["sep2"] or ""
            if mon_first:
                out = f"{mon_s}{m['sep1']}{day_s}{sep2}{year_s}"
            else:
                out = f"{day_s}{m['of'] or ''}{m['sep1']}{mon_s}{sep2}{year_s}"
            return out + (m["rest"] or "")
    except (ValueError, KeyError, OverflowError):
        return None
    return None


class Surrogates:
    """Stand-ins for one patient (``patient_key``), derived from ``secret``."""

    def __init__(self, secret: bytes | str | None, patient_key: str = "") -> None:
        self._key = _secret_bytes(secret)
        self.patient_key = patient_key
        self.lists = load_surrogates()
        self.lex = load_lexicons()
        span = self._int("date-offset") % 730
        self.date_offset = span - 365 if span < 365 else span - 364  # never 0

    def _int(self, *parts: str) -> int:
        msg = "\x1f".join((self.patient_key, *parts)).encode("utf-8")
        return int.from_bytes(hmac.new(self._key, msg, hashlib.sha256).digest()[:8], "big")

    def _pick(self, kind: str, value: str) -> str:
        items = self.lists[kind]
        return items[self._int(kind, value.lower()) % len(items)]

    def _shape(self, kind: str, value: str) -> str:
        """Same shape, other characters: digits stay digits, letters stay letters."""
        digest = hmac.new(self._key, "\x1f".join((self.patient_key, kind, value)).encode(), hashlib.sha256).digest()
        stream = (digest * (len(value) // len(digest) + 1))
        out = []
        for ch, b in zip(value, stream, strict=False):
            if ch.isdigit():
                out.append(str(b % 10))
            elif ch.isalpha() and ch.isascii():
                letter = chr(ord("A") + b % 26)
                out.append(letter if ch.isupper() else letter.lower())
            else:
                out.append(ch)
        return "".join(out)

    def name(self, value: str) -> str:
        """Each word of a name maps to a fake given name or surname on its own, so
        "John Smith", "Smith" and "JOHN" stay consistent with one another."""
        def one(m: re.Match[str]) -> str:
            word = m.group(0)
            bare = re.sub(r"\d+$", "", word)
            if len(bare) <= 1:
                return chr(ord("A") + self._int("initial", word.lower()) % 26) if bare.isupper() else word
            kind = "first_names" if bare.lower() in self.lex.first_names else "surnames"
            return _case_like(bare, self._pick(kind, bare))

        return re.sub(r"[^\W\d_][\w'’-]*", one, value)

    def date(self, value: str) -> str:
        shifted = shift_date(value, self.date_offset)
        return shifted if shifted is not None else "[DATE]"

    def shift_iso(self, value: str | None) -> str | None:
        """Shift an ISO date or datetime from structured data (note dates, facts)."""
        if not value:
            return value
        try:
            if len(value) > 10:
                dt = datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(days=self.date_offset)
                return dt.isoformat()
            return (date.fromisoformat(value[:10]) + timedelta(days=self.date_offset)).isoformat()
        except ValueError:
            return None

    def location(self, value: str) -> str:
        v = value.strip()
        if re.fullmatch(r"[\d\s-]+", v):
            return self._shape("zip", v)
        if v[:1].isdigit():
            num = str(10 + self._int("house", v.lower()) % 9890)
            street = self._pick("streets", v)
            suffix = self._pick("street_suffixes", v + "#")
            return f"{num} {street} {suffix}"
        if _STREET_END.search(v):  # "Elm St.", "Harford Rd": a street without a house number
            street = self._pick("streets", v)
            return f"{street} {self._pick('street_suffixes', v + '#')}"
        if _FACILITY.search(v):
            return self._pick("facilities", v)
        m = re.match(r"^(.*?),\s+([A-Z]{2})(\s+\d{5}(?:-\d{4})?)?$", v)
        if m:
            zip_ = self._shape("zip", m.group(3)) if m.group(3) else ""
            return f"{self._pick('cities', m.group(1))}, {m.group(2)}{zip_}"
        return _case_like(v, self._pick("cities", v))

    def replace(self, e: Entity) -> str:
        """The stand-in for one entity."""
        t, v = e.type, e.text
        if t == "NAME":
            return self.name(v)
        if t == "DATE":
            return self.date(v)
        if t == "AGE_OVER_89":
            return "90"
        if t == "LOCATION":
            return self.location(v)
        if t == "EMAIL":
            first = self._pick("first_names", v).lower()
            last = self._pick("surnames", v + "#").lower()
            return f"{first}.{last}@example.org"
        if t == "URL":
            return f"https://example.org/{self._int('url', v) % 16**8:08x}"
        if t == "IP_ADDRESS":
            n = self._int("ip", v)
            return f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"
        if t == "SSN":
            s = self._shape("ssn", v)
            return "9" + s[1:] if s[:1].isdigit() else s  # 9xx: never issued
        return self._shape(t, v)
