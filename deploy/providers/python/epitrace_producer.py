#!/usr/bin/env python3
"""epitrace provider producer kit (Python).

Publishes one of epitrace's provider feeds -- telecom location records, card
transactions or venue check-ins -- from the same CSV files that the Rust
`epitrace produce` reads, to epitrace's Kafka topics, with the same contract:

* raw phone and card numbers are pseudonymised in this process (HMAC-SHA-256
  under the health authority's key, first 16 bytes) and never leave it -- not
  in Kafka, not in a log line, not in an error message;
* every row is validated exactly as `epitrace produce` validates it; a bad row
  is skipped, counted and reported as ``FILE:LINE: column: reason`` (never a
  value of the row);
* the Kafka key is the 16 pseudonym bytes, partitioned with the Java client's
  murmur2 (librdkafka ``murmur2_random``), by an idempotent producer
  (``acks=all``);
* the value is one Avro datum, framed either as Avro single-object encoding
  (``C3 01`` + CRC-64-AVRO fingerprint + datum) or with Confluent Schema
  Registry framing (``00`` + 4-byte schema id + datum) through confluent-kafka's
  ``AvroSerializer``;
* every record carries the header ``epitrace.provider`` (the provider's id),
  so that its dead letter, if it gets one, is also copied to the provider's
  own topic ``pipeline.deadletter.<id>``, which ``dead-letters`` reads.

Usage (see README.md, or ``--help``)::

    ./producer.sh --feed telecom --input telecom.csv --key authority.key \\
        --brokers kafka1:9092 [--framing single-object|confluent --registry URL] [--provider ID]
    ./producer.sh dead-letters --provider ID --brokers kafka1:9092 [--registry URL] [--json]
    ./producer.sh selftest

The module only needs the Python standard library for reading, validating,
pseudonymising and for the self-test; confluent-kafka and fastavro are
imported when something is published.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

KIT_DIR = Path(__file__).resolve().parent
DEFAULT_SCHEMAS = KIT_DIR / ".." / ".." / ".." / "schemas"
DEFAULT_VECTORS = KIT_DIR / ".." / "pseudonym-vectors.json"
DEFAULT_PROVIDERS = "telco-a,telco-b,telco-c,card-a,card-b"
PROG = "epitrace-producer"

# --------------------------------------------------------------------------
# Text helpers that behave like Rust's (the reference implementation is
# crates/feeds/src/read.rs; Python's own str.strip / str.upper / float()
# accept more than Rust does, which would let rows through that epitrace
# refuses).
# --------------------------------------------------------------------------

# char::is_whitespace (Unicode White_Space), what str::trim removes.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def rust_trim(s: str) -> str:
    """str::trim: strips Unicode White_Space (not Python's wider set)."""
    return s.strip(RUST_WHITESPACE)


def ascii_upper(s: str) -> str:
    """str::to_ascii_uppercase: only a-z change."""
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in s)


# f64::from_str: no whitespace, no underscores, no hex; inf/infinity/nan in
# any case; at least one digit.
_F64 = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.ASCII | re.IGNORECASE,
)
# i64::from_str: optional sign, ASCII digits.
_I64 = re.compile(r"[+-]?[0-9]+", re.ASCII)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def parse_f64(s: str) -> Optional[float]:
    if not _F64.fullmatch(s):
        return None
    return float(s)


def parse_i64(s: str) -> Optional[int]:
    if not _I64.fullmatch(s):
        return None
    v = int(s)
    return v if I64_MIN <= v <= I64_MAX else None


# --------------------------------------------------------------------------
# Pseudonyms (crates/feeds/src/pseudonym.rs, deploy/providers/pseudonym-vectors.json)
# --------------------------------------------------------------------------

DOMAINS = {"msisdn": b"epitrace/v1/msisdn:", "card": b"epitrace/v1/card:"}
DIGIT_RANGE = {"msisdn": (6, 15), "card": (12, 19)}
KEY_MIN_LEN = 32


class IdError(ValueError):
    """A raw id that cannot be pseudonymised; the message never holds the id."""


def normalise_id(kind: str, raw: str) -> str:
    """Normalises a raw phone (``msisdn``) or card (``card``) number.

    Trim; drop ' ', '-', '.', '(', ')'; keep digits and, for phone numbers
    only, a leading '+'; anything else refuses the id. 6-15 digits for a
    phone number, 12-19 for a card number.
    """
    out = []
    for i, c in enumerate(rust_trim(raw)):
        if "0" <= c <= "9":
            out.append(c)
        elif c == "+" and i == 0 and kind == "msisdn":
            out.append(c)
        elif c in " -.()":
            continue
        else:
            raise IdError("contains a character that is not a digit or separator")
    norm = "".join(out)
    digits = len(norm.lstrip("+"))
    lo, hi = DIGIT_RANGE[kind]
    if not lo <= digits <= hi:
        raise IdError(f"{digits} digits, expected {lo}\u2013{hi}")
    return norm


def pseudonym(key: bytes, kind: str, raw: str) -> bytes:
    """First 16 bytes of HMAC-SHA-256(key, domain || normalised id)."""
    norm = normalise_id(kind, raw)
    return hmac.new(key, DOMAINS[kind] + norm.encode("ascii"), hashlib.sha256).digest()[:16]


class KeyError_(Exception):
    pass


def parse_key(data: bytes) -> bytes:
    """A key file's bytes -> the key: hex text (whitespace ignored), or raw bytes."""
    text = "".join(c for c in data.decode("utf-8", "replace") if c not in RUST_WHITESPACE)
    if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        key = bytes.fromhex(text)
    else:
        key = data
    if len(key) < KEY_MIN_LEN:
        raise KeyError_(f"{len(key)} bytes, at least {KEY_MIN_LEN} needed")
    return key


def read_key(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyError_(f"key {path}: {e.strerror or e}") from None
    try:
        return parse_key(data)
    except KeyError_ as e:
        raise KeyError_(f"key {path}: {e}") from None


def looks_like_raw_id(value: str) -> bool:
    """Whether a free-text value looks like a raw phone or card number.

    Once spaces, dashes, dots and brackets are dropped, only digits (and a
    leading '+') remain, and they are a Korean mobile number ('01' then 8-9
    digits, or '+82 1...'), or 13-19 digits passing the Luhn check.
    """
    digits = []
    for i, c in enumerate(rust_trim(value)):
        if "0" <= c <= "9":
            digits.append(c)
        elif c == "+" and i == 0:
            continue
        elif c in " -.()":
            continue
        else:
            return False
    d = "".join(digits)
    mobile = (d.startswith("01") and 10 <= len(d) <= 11) or (
        d.startswith("821") and 11 <= len(d) <= 12
    )
    return mobile or (13 <= len(d) <= 19 and _luhn(d))


def _luhn(d: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(d)):
        x = ord(ch) - 48
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        total += x
    return total % 10 == 0


# --------------------------------------------------------------------------
# Timestamps (crates/feeds/src/time.rs)
# --------------------------------------------------------------------------

SECOND_MS, MINUTE_MS, HOUR_MS, DAY_MS = 1000, 60_000, 3_600_000, 86_400_000
TIME_MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
TIME_MAX_MS = 4_102_444_800_000 - 1  # before 2100-01-01T00:00:00Z


class TimeError(ValueError):
    pass


def _days_from_civil(y: int, m: int, d: int) -> int:
    y = y - 1 if m <= 2 else y
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _number(b: bytes, what: str) -> int:
    if not b or not all(48 <= x <= 57 for x in b):
        raise TimeError(f"bad {what}")
    return int(b)


def _rfc3339(s: str) -> int:
    b = s.encode("utf-8")
    if (
        len(b) < 20
        or b[4:5] != b"-"
        or b[7:8] != b"-"
        or b[10:11] not in (b"T", b"t", b" ")
        or b[13:14] != b":"
        or b[16:17] != b":"
    ):
        raise TimeError("not RFC 3339 (2020-05-02T13:05:00Z) or epoch milliseconds")
    y, mo, d = _number(b[0:4], "year"), _number(b[5:7], "month"), _number(b[8:10], "day")
    h, mi, se = _number(b[11:13], "hour"), _number(b[14:16], "minute"), _number(b[17:19], "second")
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days_in = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= mo <= 12 or d < 1 or d > days_in[mo - 1] or h > 23 or mi > 59 or se > 59:
        raise TimeError("not a valid date and time")
    rest = b[19:]
    frac_ms = 0
    if rest.startswith(b"."):
        r = rest[1:]
        n = 0
        while n < len(r) and 48 <= r[n] <= 57:
            n += 1
        if n == 0:
            raise TimeError("empty fraction of a second")
        frac_ms = _number(r[: min(n, 3)].ljust(3, b"0"), "fraction")
        rest = r[n:]
    if rest in (b"Z", b"z"):
        offset_ms = 0
    elif len(rest) == 6 and rest[:1] in (b"+", b"-") and rest[3:4] == b":":
        sign = -1 if rest[:1] == b"-" else 1
        offset_ms = sign * (
            _number(rest[1:3], "offset hours") * HOUR_MS + _number(rest[4:6], "offset minutes") * MINUTE_MS
        )
    else:
        raise TimeError("expected Z or an offset like +09:00 after the time")
    return (
        _days_from_civil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + se * SECOND_MS + frac_ms - offset_ms
    )


def parse_time(s: str) -> int:
    """RFC 3339 (Z or an offset, optional fraction) or epoch milliseconds -> epoch ms."""
    s = rust_trim(s)
    if s and all("0" <= c <= "9" for c in s):
        ms = int(s)
        if ms > I64_MAX:
            raise TimeError("epoch milliseconds out of range")
    else:
        ms = _rfc3339(s)
    if not TIME_MIN_MS <= ms <= TIME_MAX_MS:
        raise TimeError("outside 2000-01-01 .. 2100-01-01")
    return ms


# --------------------------------------------------------------------------
# Feeds: columns, topics, records (crates/feeds/src/rows.rs)
# --------------------------------------------------------------------------

TIME_DOC = "RFC 3339 (2020-05-02T13:05:00Z or with an offset) or epoch milliseconds"


@dataclass(frozen=True)
class Column:
    name: str
    optional: bool
    doc: str


@dataclass(frozen=True)
class Feed:
    name: str
    topic: str
    record: str
    schema_file: str
    columns: tuple


FEEDS = {
    "telecom": Feed(
        "telecom",
        "feeds.telecom.location",
        "LocationPing",
        "location_ping.avsc",
        (
            Column("msisdn", False, "raw phone number (pseudonymised by the producer)"),
            Column("provider", False, "telecom id"),
            Column("observed_at", False, TIME_DOC),
            Column("lat", False, "degrees"),
            Column("lng", False, "degrees"),
            Column("accuracy_m", False, "radius in metres"),
            Column("source", False, "CELL, GPS or WIFI"),
            Column("site_id", True, "serving cell site, for CELL"),
        ),
    ),
    "card": Feed(
        "card",
        "feeds.card.transaction",
        "CardTransaction",
        "card_transaction.avsc",
        (
            Column("card_number", False, "raw card number (pseudonymised by the producer)"),
            Column("issuer", False, "card company id"),
            Column("merchant_id", False, "merchant id"),
            Column("mcc", False, "ISO 18245 merchant category code"),
            Column("observed_at", False, TIME_DOC),
            Column("lat", False, "merchant latitude"),
            Column("lng", False, "merchant longitude"),
            Column("accuracy_m", False, "geocoding radius in metres"),
        ),
    ),
    "checkin": Feed(
        "checkin",
        "feeds.venue.checkin",
        "VenueCheckin",
        "venue_checkin.avsc",
        (
            Column("msisdn", False, "raw phone number of the visitor (pseudonymised by the producer)"),
            Column("venue_id", False, "venue id"),
            Column("lat", False, "venue latitude"),
            Column("lng", False, "venue longitude"),
            Column("checkin_at", False, TIME_DOC),
            Column("checkout_at", True, TIME_DOC),
        ),
    ),
}

LOCATION_SOURCES = ("CELL", "GPS", "WIFI")
TEXT_ID_MAX = 64
_TEXT_ID = re.compile(r"[A-Za-z0-9._:-]*", re.ASCII)
RAW_ID_REFUSAL = "looks like a raw phone or card number; refused so that it never leaves this process"

# The record header naming the provider (crates/model/src/topics.rs
# PROVIDER_HEADER): epitrace copies the dead letter of a record carrying it
# to pipeline.deadletter.<provider id>, when the authority configured that
# provider. An id names a topic, hence the narrower alphabet (no ':').
PROVIDER_HEADER = "epitrace.provider"
PROVIDER_DEADLETTER_PREFIX = "pipeline.deadletter."
_PROVIDER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
PROVIDER_ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ -"


def provider_id(value: str) -> str:
    """argparse type of --provider: an id that can name pipeline.deadletter.<id>."""
    if not _PROVIDER_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"must be {PROVIDER_ID_RULE} (it names the topic {PROVIDER_DEADLETTER_PREFIX}<ID>)"
        )
    return value


def provider_headers(feed: Feed, datum: dict, flag: Optional[str]) -> Optional[list]:
    """The Kafka headers of one record: ``epitrace.provider`` = --provider when
    given, else the row's ``provider`` (telecom) or ``issuer`` (card) column
    when it is a provider id (a ':' passes the row check but names no topic);
    none for check-ins without --provider."""
    if flag:
        value = flag
    elif feed.name == "telecom":
        value = datum["provider"]
    elif feed.name == "card":
        value = datum["issuer"]
    else:
        return None
    if not _PROVIDER_ID.fullmatch(value):
        return None
    return [(PROVIDER_HEADER, value.encode("utf-8"))]


class RowError(Exception):
    """A row that cannot be turned into a record. Never carries a value."""

    def __init__(self, line: int, column: str, reason: str):
        super().__init__(f"line {line}: {column}: {reason}")
        self.line, self.column, self.reason = line, column, reason


class HeaderError(Exception):
    pass


def _text_id_reason(v: str) -> Optional[str]:
    if not v:
        return "empty"
    if len(v.encode("utf-8")) > TEXT_ID_MAX:
        return "too long"
    if not _TEXT_ID.fullmatch(v):
        return "characters outside [A-Za-z0-9._:-]"
    return None


class RowConverter:
    """Turns one row (column name -> raw text) into (key, Avro datum dict).

    Mirrors RowConverter::convert in crates/feeds/src/read.rs, check by check
    and in the same order, so that a row is refused for the same column and
    reason as epitrace's own producer would give.
    """

    def __init__(self, feed: Feed, key: bytes, providers: list, now_ms: Optional[int]):
        self.feed = feed
        self.key = key
        self.providers = providers
        self.now_ms = now_ms
        self.cols = {c.name: c for c in feed.columns}

    def convert(self, line: int, row: dict) -> tuple:
        cols = self.cols

        def get(name: str) -> str:
            v = rust_trim(row.get(name, ""))
            if not v and not cols[name].optional:
                raise RowError(line, name, "missing")
            return v

        def opt(name: str) -> Optional[str]:
            v = get(name)
            return v if v else None

        def ident(name: str, v: str) -> str:
            if looks_like_raw_id(v):
                raise RowError(line, name, RAW_ID_REFUSAL)
            return v

        def text_id(name: str, v: str) -> str:
            reason = _text_id_reason(v)
            if reason:
                raise RowError(line, name, f"invalid identifier: {reason}")
            return v

        def provider(name: str) -> str:
            v = ident(name, get(name))
            if self.providers and v not in self.providers:
                raise RowError(line, name, "not one of the configured providers (feeds.providers)")
            return text_id(name, v)

        def tm(name: str) -> int:
            try:
                return parse_time(get(name))
            except TimeError as e:
                raise RowError(line, name, str(e)) from None

        def opt_tm(name: str) -> Optional[int]:
            v = opt(name)
            if v is None:
                return None
            try:
                return parse_time(v)
            except TimeError as e:
                raise RowError(line, name, str(e)) from None

        def num(name: str) -> float:
            v = parse_f64(get(name))
            if v is None:
                raise RowError(line, name, "not a number")
            return v

        def position() -> tuple:
            lat, lng = num("lat"), num("lng")
            if not -90.0 <= lat <= 90.0:
                raise RowError(line, "lat/lng", "latitude is not a finite number in [-90, 90]")
            if not -180.0 <= lng <= 180.0:
                raise RowError(line, "lat/lng", "longitude is not a finite number in [-180, 180]")
            return lat, lng

        def accuracy() -> float:
            a = num("accuracy_m")
            if not 0.0 <= a <= 100_000.0:
                raise RowError(line, "accuracy_m", "not a finite number in [0, 100000] m")
            return a

        def subject(name: str, kind: str) -> bytes:
            raw = get(name)
            try:
                return pseudonym(self.key, kind, raw)
            except IdError as e:
                raise RowError(line, name, str(e)) from None

        feed = self.feed.name
        if feed == "telecom":
            subj = subject("msisdn", "msisdn")
            prov = provider("provider")
            observed_at = tm("observed_at")
            lat, lng = position()
            acc = accuracy()
            source = ascii_upper(get("source"))
            if source not in LOCATION_SOURCES:
                raise RowError(line, "source", "not one of: " + cols["source"].doc)
            site = opt("site_id")
            if site is not None:
                site = text_id("site_id", ident("site_id", site))
            datum = {
                "subject": subj,
                "provider": prov,
                "observed_at": observed_at,
                "lat": lat,
                "lng": lng,
                "accuracy_m": acc,
                "source": source,
                "site_id": site,
            }
            times = [("observed_at", observed_at)]
        elif feed == "card":
            subj = subject("card_number", "card")
            issuer = provider("issuer")
            merchant = text_id("merchant_id", ident("merchant_id", get("merchant_id")))
            mcc = parse_i64(get("mcc"))
            if mcc is None:
                raise RowError(line, "mcc", "not an integer")
            if not 0 <= mcc <= 9999:
                raise RowError(line, "mcc", "merchant category code outside 0..=9999")
            lat, lng = position()
            acc = accuracy()
            observed_at = tm("observed_at")
            datum = {
                "subject": subj,
                "issuer": issuer,
                "merchant_id": merchant,
                "mcc": mcc,
                "lat": lat,
                "lng": lng,
                "accuracy_m": acc,
                "observed_at": observed_at,
            }
            times = [("observed_at", observed_at)]
        elif feed == "checkin":
            subj = subject("msisdn", "msisdn")
            venue = text_id("venue_id", ident("venue_id", get("venue_id")))
            lat, lng = position()
            observed_at = tm("checkin_at")
            checkout_at = opt_tm("checkout_at")
            if checkout_at is not None and checkout_at < observed_at:
                raise RowError(line, "row", "checkout_at is before the time it must follow")
            datum = {
                "subject": subj,
                "venue_id": venue,
                "lat": lat,
                "lng": lng,
                "observed_at": observed_at,
                "checkout_at": checkout_at,
            }
            times = [("observed_at", observed_at)]
            if checkout_at is not None:
                times.append(("checkout_at", checkout_at))
        else:  # pragma: no cover - FEEDS holds the three above
            raise ValueError(feed)
        if self.now_ms is not None:
            for field, t in times:
                if t > self.now_ms + DAY_MS:
                    raise RowError(line, "row", f"{field} is more than 24 h after this producer's clock")
        return subj, datum


# --------------------------------------------------------------------------
# CSV reading (crates/feeds/src/read.rs csv_rows, with the csv crate's
# RFC 4180 parsing: a UTF-8 BOM dropped, blank lines skipped). A row's line
# number is the line of the file where it starts. (epitrace produce's reader
# numbers the same for files with '\n' line ends and no blank lines; with
# '\r\n' or '\r' line ends, or after blank lines, it reports lower numbers.)
# --------------------------------------------------------------------------

_BAD_UTF8 = re.compile("[\udc80-\udcff]")


class _Lines:
    """Line iterator that counts the lines the csv reader has taken.

    Lines end at '\n', '\r\n' or a lone '\r' (the file is opened with
    newline=''), so a record's line number is one more than the number of
    lines taken before it.
    """

    def __init__(self, f):
        self.f = f
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.f)
        self.count += 1
        return line


def _name_like(h: str) -> bool:
    b = h.encode("utf-8")
    return (
        0 < len(b) <= 32
        and any(97 <= x <= 122 for x in b)
        and all(97 <= x <= 122 or 48 <= x <= 57 or x == 95 for x in b)
    )


def csv_rows(path: str, feed: Feed) -> Iterator:
    """Yields (line, {column: raw text}) or a RowError per data row.

    Raises HeaderError (before yielding anything) for a header that lacks a
    required column or has an unknown one, OSError when unreadable.
    """
    csv.field_size_limit(2**31 - 1)
    f = open(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    expected = ",".join(c.name for c in feed.columns)

    def header_error(found: str) -> HeaderError:
        return HeaderError(f'{path}: header "{found}" is not the {feed.name} header "{expected}"')

    lines = _Lines(f)
    reader = csv.reader(lines, dialect="excel", strict=False)
    try:
        header = None
        for rec in reader:
            if rec:
                header = rec
                break
        if header is None:
            header = []
        if any(_BAD_UTF8.search(h) for h in header):
            raise header_error("not UTF-8")
        found = [rust_trim(h) for h in header]
        names = {c.name for c in feed.columns}
        unknown = any(h not in names for h in found)
        missing = any(not c.optional and c.name not in found for c in feed.columns)
        if unknown or missing:
            # Only what looks like a column name is quoted: a file without a
            # header has a row of values -- personal data -- in its place.
            shown = [h if _name_like(h) else "<not a column name>" for h in found]
            raise header_error(",".join(shown))
        index = {c.name: found.index(c.name) for c in feed.columns if c.name in found}
        width = len(found)
        while True:
            line = lines.count + 1  # where the next record starts
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error:
                yield RowError(line, "row", "unreadable CSV")
                continue
            if not rec:
                continue  # a blank line, skipped
            if any(_BAD_UTF8.search(v) for v in rec):
                yield RowError(line, "row", "not UTF-8")
                continue
            if len(rec) != width:
                yield RowError(line, "row", f"{len(rec)} fields, the header has {width}")
                continue
            yield line, {name: rec[i] for name, i in index.items()}
    finally:
        f.close()


# --------------------------------------------------------------------------
# Avro: Parsing Canonical Form, CRC-64-AVRO (Rabin), single-object frames
# --------------------------------------------------------------------------

AVRO_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_RABIN_EMPTY = 0xC15D213AA4D7A795


def _rabin_table() -> list:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_RABIN_EMPTY & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    return table


_RABIN_TABLE = _rabin_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's 64-bit Rabin fingerprint (CRC-64-AVRO)."""
    fp = _RABIN_EMPTY
    for b in data:
        fp = (fp >> 8) ^ _RABIN_TABLE[(fp ^ b) & 0xFF]
    return fp


def parsing_canonical_form(schema) -> str:
    """Parsing Canonical Form per the Avro specification.

    Attributes other than type, name, fields, symbols, items, values and size
    are dropped -- so a logical type reduces to its primitive type
    (``{"type": "long", "logicalType": "timestamp-millis"}`` -> ``"long"``),
    as the Java implementation and epitrace do; names become full names; a
    named type already written is referred to by its full name.
    """
    seen = set()

    def q(s: str) -> str:
        return json.dumps(s, ensure_ascii=False)

    def fullname(name: str, ns: Optional[str]) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    def go(s, ns: Optional[str]) -> str:
        if isinstance(s, str):
            return q(s) if s in AVRO_PRIMITIVES else q(fullname(s, ns))
        if isinstance(s, list):
            return "[" + ",".join(go(x, ns) for x in s) + "]"
        t = s["type"]
        if not isinstance(t, str):
            return go(t, ns)
        if t in AVRO_PRIMITIVES:
            return q(t)
        if t in ("record", "error", "enum", "fixed"):
            name = s["name"]
            if "." not in name and "namespace" in s:
                ns = s["namespace"] or None
            full = fullname(name, ns)
            if full in seen:
                return q(full)
            seen.add(full)
            inner = full.rsplit(".", 1)[0] if "." in full else None
            out = '{"name":' + q(full) + ',"type":' + q(t)
            if t in ("record", "error"):
                fields = ",".join(
                    '{"name":' + q(f["name"]) + ',"type":' + go(f["type"], inner) + "}" for f in s["fields"]
                )
                out += ',"fields":[' + fields + "]"
            elif t == "enum":
                out += ',"symbols":[' + ",".join(q(x) for x in s["symbols"]) + "]"
            else:
                out += ',"size":' + str(int(s["size"]))
            return out + "}"
        if t == "array":
            return '{"type":"array","items":' + go(s["items"], ns) + "}"
        if t == "map":
            return '{"type":"map","values":' + go(s["values"], ns) + "}"
        return q(fullname(t, ns))  # a reference to a named type

    return go(schema, None)


def single_object_header(schema_text: str) -> bytes:
    """``C3 01`` + the 8-byte little-endian CRC-64-AVRO of the canonical form."""
    pcf = parsing_canonical_form(json.loads(schema_text))
    return b"\xc3\x01" + crc64_avro(pcf.encode("utf-8")).to_bytes(8, "little")


def load_schema_text(schemas_dir: Path, feed: Feed) -> str:
    path = Path(schemas_dir) / feed.schema_file
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise SystemExit(
            f"{PROG}: cannot read {path}: {e.strerror or e} (point --schemas at epitrace's schemas/ folder)"
        ) from None


# --------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------

# librdkafka properties the contract fixes; -X may not change them.
FIXED_PRODUCER_CONF = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
}


class Encoder:
    """Turns a datum dict into the value bytes of one framing."""

    def __init__(self, framing: str, feed: Feed, schema_text: str, registry_url: Optional[str], registry_conf: dict):
        import fastavro  # noqa: PLC0415 - imported when publishing only

        self.framing = framing
        self.description = ""
        if framing == "single-object":
            self._parsed = fastavro.parse_schema(json.loads(schema_text))
            self._header = single_object_header(schema_text)
            self._writer = fastavro.schemaless_writer
            self.description = f"single-object frames, header {self._header.hex()}"
        else:
            from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: PLC0415
            from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415
            from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415
            from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

            subject = f"{feed.topic}-value"
            client = SchemaRegistryClient({"url": registry_url, **registry_conf})
            # The exact text of the .avsc, as epitrace registered it (a
            # Schema object: a str would be stripped of its final newline).
            schema = Schema(schema_text, schema_type="AVRO")
            try:
                registered = client.lookup_schema(subject, schema)
            except SchemaRegistryError as e:
                if e.http_status_code == 404:
                    raise SystemExit(
                        f"{PROG}: the schema of {feed.schema_file} is not registered under subject {subject} "
                        f"in {registry_url} (registry error {e.error_code}): epitrace registers its schemas "
                        "(`epitrace schemas register`); ask its operators, and check that --schemas is the "
                        "schemas/ folder of the epitrace release they run"
                    ) from None
                raise SystemExit(f"{PROG}: schema registry {registry_url}: {e}") from None
            except Exception as e:  # connection refused, TLS, DNS...
                raise SystemExit(f"{PROG}: schema registry {registry_url} did not answer: {e}") from None
            self.schema_id = registered.schema_id
            self._serializer = AvroSerializer(
                client,
                schema,
                conf={
                    "auto.register.schemas": False,  # epitrace registers; producers only look up
                    "use.latest.version": False,
                    "normalize.schemas": False,
                },
            )
            self._ctx = SerializationContext(feed.topic, MessageField.VALUE)
            self.description = f"Confluent frames, subject {subject}, schema id {self.schema_id}"

    def encode(self, datum: dict) -> bytes:
        if self.framing == "single-object":
            out = io.BytesIO()
            out.write(self._header)
            self._writer(out, self._parsed, datum)
            return out.getvalue()
        return self._serializer(datum, self._ctx)


class _OncePerKind(logging.Filter):
    """Lets each kind of client log line through once (librdkafka repeats a
    refused connection every few milliseconds)."""

    def __init__(self):
        super().__init__()
        self.seen: set = set()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"[0-9]+", "N", record.getMessage())
        if kind in self.seen:
            return False
        self.seen.add(kind)
        return True


def _client_logger() -> logging.Logger:
    log = logging.getLogger("epitrace_producer.kafka")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("kafka client: %(message)s"))
        log.addHandler(handler)
        log.addFilter(_OncePerKind())
        log.propagate = False
        log.setLevel(logging.INFO)
    return log


def _kv_options(items: list, flag: str) -> dict:
    out = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise SystemExit(f"{PROG}: {flag} expects KEY=VALUE")
        out[k.strip()] = v
    return out


def produce(args) -> int:
    feed = FEEDS[args.feed]
    if Path(args.input).suffix in (".jsonl", ".ndjson", ".json"):
        raise SystemExit(f"{PROG}: {args.input}: JSON Lines is not supported by this kit; give it the CSV file")
    if not 0.0 <= args.max_bad_share <= 1.0:
        raise SystemExit(f"{PROG}: --max-bad-share must be within [0, 1]")
    if not args.brokers:
        raise SystemExit(f"{PROG}: --brokers is required (or set EPITRACE_BROKERS)")
    if args.framing == "confluent" and not args.registry:
        raise SystemExit(f"{PROG}: --framing confluent needs --registry URL (or EPITRACE_KAFKA_REGISTRY_URL)")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    try:
        key = read_key(args.key)
    except KeyError_ as e:
        raise SystemExit(f"{PROG}: {e}") from None
    schema_text = load_schema_text(Path(args.schemas), feed)
    try:
        rows = csv_rows(args.input, feed)
        first = next(rows, None)  # opens the file and checks the header now
    except HeaderError as e:
        raise SystemExit(f"{PROG}: {e}") from None
    except OSError as e:
        raise SystemExit(f"{PROG}: {args.input}: {e.strerror or e}") from None

    from confluent_kafka import KafkaException, Producer  # noqa: PLC0415

    encoder = Encoder(args.framing, feed, schema_text, args.registry, _kv_options(args.registry_option, "--registry-option"))
    conf = {"bootstrap.servers": args.brokers, "client.id": "epitrace-python-producer",
            "compression.type": "lz4", "linger.ms": 5}
    extra = _kv_options(args.kafka_option, "-X")
    for k in extra:
        if k in FIXED_PRODUCER_CONF:
            raise SystemExit(f"{PROG}: -X {k} is fixed by epitrace's contract ({FIXED_PRODUCER_CONF[k]})")
    conf.update(extra)
    conf.update(FIXED_PRODUCER_CONF)
    errors: list = []
    producer = Producer({**conf, "error_cb": lambda e: errors.append(e), "logger": _client_logger()})
    try:
        md = producer.list_topics(timeout=10)
    except KafkaException as e:
        producer.poll(0)  # shows the client's reason, once
        raise SystemExit(f"{PROG}: no Kafka broker answered at {args.brokers} within 10 s ({e})") from None
    topic_md = md.topics.get(feed.topic)
    if topic_md is None or topic_md.error is not None:
        raise SystemExit(
            f"{PROG}: topic {feed.topic} does not exist on {args.brokers}: epitrace creates its topics "
            "(`epitrace topics create`); ask its operators"
        )
    quiet = args.quiet
    if args.provider:
        header_note = f"header {PROVIDER_HEADER}={args.provider}"
    elif feed.name == "checkin":
        header_note = (f"no {PROVIDER_HEADER} header (pass --provider ID to get your dead letters on "
                       f"{PROVIDER_DEADLETTER_PREFIX}<ID>)")
    else:
        column = "provider" if feed.name == "telecom" else "issuer"
        header_note = f"header {PROVIDER_HEADER} from the {column} column (when it is a provider id)"
    if not quiet:
        print(f"{args.input} -> {feed.topic} ({len(topic_md.partitions)} partitions), {encoder.description}, "
              f"{header_note}", file=sys.stderr)

    state = {"delivered": 0, "failed": 0}
    failure_reasons: dict = {}

    def on_delivery(err, _msg):
        if err is None:
            state["delivered"] += 1
        else:
            state["failed"] += 1
            reason = err.str()
            failure_reasons[reason] = failure_reasons.get(reason, 0) + 1

    converter = RowConverter(feed, key, providers, int(time.time() * 1000))
    rows_n = bad = without_header = 0
    bad_by_column: dict = {}
    started = last = time.monotonic()

    def items() -> Iterator:
        if first is not None:
            yield first
        yield from rows

    for item in items():
        rows_n += 1
        if isinstance(item, RowError):
            err = item
        else:
            line, row = item
            try:
                subj, datum = converter.convert(line, row)
                err = None
            except RowError as e:
                err = e
            except Exception as e:  # never print the row: only the kind of failure
                err = RowError(line, "row", f"internal error ({type(e).__name__})")
        if err is not None:
            bad += 1
            bad_by_column[err.column] = bad_by_column.get(err.column, 0) + 1
            if not quiet:
                print(f"{args.input}:{err.line}: {err.column}: {err.reason}", file=sys.stderr)
            continue
        try:
            value = encoder.encode(datum)
        except Exception as e:  # a registry failure mid-run, say: stop; never print the datum
            detail = str(e) if type(e).__name__ == "SchemaRegistryError" or isinstance(e, KafkaException) else ""
            producer.flush(30)
            raise SystemExit(f"{PROG}: {args.input}:{line}: encoding failed: {type(e).__name__}"
                             + (f": {detail}" if detail else "")) from None
        headers = provider_headers(feed, datum, args.provider)
        if headers is None:
            without_header += 1
        while True:
            try:
                if headers is None:
                    producer.produce(feed.topic, value=value, key=subj, on_delivery=on_delivery)
                else:
                    producer.produce(feed.topic, value=value, key=subj, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)  # the local queue is full: wait for deliveries
            except KafkaException as e:  # refused locally (e.g. too large, fatal producer state)
                on_delivery(e.args[0], None)
                break
        producer.poll(0)
        now = time.monotonic()
        if not quiet and now - last >= 5:
            last = now
            print(f"{args.input}: {rows_n} rows, {state['delivered']} published, {bad} bad "
                  f"({state['delivered'] / (now - started):.0f} records/s)", file=sys.stderr)
    while producer.flush(30) > 0:
        if not quiet:
            print(f"{args.input}: waiting for {len(producer)} deliveries", file=sys.stderr)
    seconds = time.monotonic() - started
    print(f"published {state['delivered']} records to {feed.topic}, {bad} bad rows skipped (framing {args.framing})")
    if not quiet:
        print(f"{args.input}: {rows_n} rows, {state['delivered']} published, {bad} bad "
              f"({(bad / rows_n * 100 if rows_n else 0):.3f}%) in {seconds:.1f} s "
              f"({state['delivered'] / seconds if seconds > 0 else 0:.0f} records/s)", file=sys.stderr)
        for column in sorted(bad_by_column):
            print(f"  bad {column}: {bad_by_column[column]}", file=sys.stderr)
    if without_header and feed.name != "checkin":
        column = "provider" if feed.name == "telecom" else "issuer"
        print(f"{PROG}: {without_header} record(s) sent without the {PROVIDER_HEADER} header: their {column} is "
              f"not a provider id ([A-Za-z0-9._-]{{1,64}}); pass --provider ID to have their dead letters on your "
              "topic", file=sys.stderr)
    status = 0
    if state["failed"]:
        status = 1
        print(f"{PROG}: {state['failed']} records were not delivered:", file=sys.stderr)
        for reason, n in sorted(failure_reasons.items()):
            print(f"  {n} x {reason}", file=sys.stderr)
        for e in sorted({str(e) for e in errors}):
            print(f"  client error: {e}", file=sys.stderr)
    share = bad / rows_n if rows_n else 0.0
    if share > args.max_bad_share:
        status = 1
        print(f"{PROG}: {args.input}: {share * 100:.3f}% of rows are bad, above --max-bad-share "
              f"{args.max_bad_share * 100:.3f}%", file=sys.stderr)
    return status


# --------------------------------------------------------------------------
# Reading a provider's dead letters (producer.sh dead-letters)
# --------------------------------------------------------------------------

DEAD_LETTER_SCHEMA_FILE = "dead_letter.avsc"
# librdkafka consumer properties the reader fixes; -X may not change them.
# (group.id is deadletters.<ID>, the group the authority grants Read on.)
FIXED_CONSUMER_CONF = {
    "enable.auto.commit": False,  # partitions are assigned, offsets never committed
    "enable.partition.eof": True,  # how the reader knows it reached the end of a partition
}


class Undecodable(Exception):
    """A dead-letter value that is not a DeadLetter this reader can decode.
    The message never holds bytes of the value."""


class RegistryFailure(Exception):
    """The registry did not answer for a schema id (down, refused, an error
    other than 404): the run stops rather than call every Confluent frame
    undecodable."""


def _strip_logical_types(schema):
    """The schema without logicalType attributes: timestamps read as epoch
    milliseconds (``long``), whatever their value, instead of datetimes."""
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(x) for x in schema]
    return schema


def rfc3339_ms(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with milliseconds and Z."""
    import datetime  # noqa: PLC0415

    try:
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms since 1970-01-01T00:00:00Z"
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
            f"{t.microsecond // 1000:03d}Z")


_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029]")


def one_line(s: str) -> str:
    """A text with its control characters as \\uXXXX, so that it stays on one line."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


class DeadLetterDecoder:
    """Turns a value of pipeline.deadletter[.<provider>] into a DeadLetter dict
    (topic, partition, offset, reason_code, detail, payload, dead_lettered_at
    in epoch ms), or raises Undecodable.

    Single-object frames are read by fingerprint: the DeadLetter of the
    --schemas folder and of its released/*/ versions. Confluent frames by
    schema id, the writer schema fetched from --registry
    (GET <registry>/schemas/ids/<id>, once per id).
    """

    def __init__(self, schemas_dir: Path, registry_url: Optional[str], registry_conf: dict):
        import fastavro  # noqa: PLC0415

        self._fastavro = fastavro
        path = Path(schemas_dir) / DEAD_LETTER_SCHEMA_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SystemExit(
                f"{PROG}: cannot read {path}: {e.strerror or e} (point --schemas at epitrace's schemas/ folder)"
            ) from None
        self.header = single_object_header(text)
        self._reader = fastavro.parse_schema(_strip_logical_types(json.loads(text)))
        self._writers = {self.header[2:]: self._reader}
        for released in sorted(Path(schemas_dir).glob(f"released/*/{DEAD_LETTER_SCHEMA_FILE}")):
            try:
                t = released.read_text(encoding="utf-8")
                fp = single_object_header(t)[2:]
                if fp not in self._writers:
                    self._writers[fp] = fastavro.parse_schema(_strip_logical_types(json.loads(t)))
            except (OSError, ValueError, KeyError):
                continue  # an unreadable old version: its frames are reported as undecodable
        self.registry_url = registry_url
        self._registry_conf = registry_conf
        self._client = None
        self._by_id: dict = {}  # schema id -> parsed writer schema, or the Undecodable it gave

    def _registry_schema(self, schema_id: int):
        known = self._by_id.get(schema_id)
        if isinstance(known, Undecodable):
            raise known
        if known is not None:
            return known
        if not self.registry_url:
            raise Undecodable(f"a Confluent frame (schema id {schema_id}) and no --registry to look the id up")
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
            from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

            if self._client is None:
                self._client = SchemaRegistryClient({"url": self.registry_url, **self._registry_conf})
            try:
                schema = self._client.get_schema(schema_id)
                parsed = self._fastavro.parse_schema(_strip_logical_types(json.loads(schema.schema_str)))
            except SchemaRegistryError as e:
                if e.http_status_code == 404:
                    raise Undecodable(f"a Confluent frame of schema id {schema_id}, which the registry at "
                                      f"{self.registry_url} does not have (HTTP 404): is --registry epitrace's "
                                      "registry?") from None
                raise RegistryFailure(f"the Schema Registry at {self.registry_url} answered HTTP "
                                      f"{e.http_status_code} for schema id {schema_id}: {e.error_message}") from None
            except ValueError as e:
                raise Undecodable(f"a Confluent frame of schema id {schema_id}, whose schema in the registry does "
                                  f"not parse ({e})") from None
            except Exception as e:  # connection refused, TLS, DNS...
                raise RegistryFailure(f"no Schema Registry answered at {self.registry_url} for schema id "
                                      f"{schema_id} ({type(e).__name__}: {e})") from None
        except Undecodable as e:
            self._by_id[schema_id] = e
            raise
        self._by_id[schema_id] = parsed
        return parsed

    def decode(self, value: Optional[bytes]) -> dict:
        if not value:
            raise Undecodable("empty value")
        if value[:2] == b"\xc3\x01":
            if len(value) < 10:
                raise Undecodable("a single-object frame cut short in its header")
            writer = self._writers.get(value[2:10])
            if writer is None:
                raise Undecodable(
                    f"a single-object frame of a schema this --schemas folder does not have (header "
                    f"{value[:10].hex()}, its DeadLetter's is {self.header.hex()}): use the schemas/ of the "
                    "epitrace release the authority runs"
                )
            datum = value[10:]
        elif value[:1] == b"\x00":
            if len(value) < 5:
                raise Undecodable("a Confluent frame cut short in its header")
            writer = self._registry_schema(int.from_bytes(value[1:5], "big"))
            datum = value[5:]
        else:
            raise Undecodable("neither a single-object frame (C3 01) nor a Confluent frame (00)")
        buf = io.BytesIO(datum)
        try:
            d = self._fastavro.schemaless_reader(buf, writer, self._reader)
        except Exception as e:  # never the exception's text: it may quote bytes of the value
            raise Undecodable(f"the datum does not read as a DeadLetter ({type(e).__name__})") from None
        if buf.tell() != len(datum):
            raise Undecodable(f"{len(datum) - buf.tell()} bytes after the DeadLetter datum")
        return d


def dead_letter_line(d: dict) -> str:
    """Text mode: one line per dead letter, the payload's length only."""
    return (f"{one_line(d['topic'])}/{d['partition']}@{d['offset']} {one_line(d['reason_code'])}: "
            f"{one_line(d['detail'])} (dead-lettered {rfc3339_ms(d['dead_lettered_at'])}, "
            f"{len(d['payload'])} bytes)")


def dead_letter_json(d: dict) -> str:
    """--json: one object per line, the payload as hex."""
    return json.dumps({
        "topic": d["topic"],
        "partition": d["partition"],
        "offset": d["offset"],
        "reason_code": d["reason_code"],
        "detail": d["detail"],
        "dead_lettered_at": rfc3339_ms(d["dead_lettered_at"]),
        "payload_hex": d["payload"].hex(),
    }, ensure_ascii=False, separators=(",", ":"))


def dead_letters(args) -> int:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition  # noqa: PLC0415

    provider = args.provider
    topic = PROVIDER_DEADLETTER_PREFIX + provider
    group = f"deadletters.{provider}"
    if not args.brokers:
        raise SystemExit(f"{PROG}: --brokers is required (or set EPITRACE_BROKERS)")
    decoder = DeadLetterDecoder(Path(args.schemas), args.registry,
                                _kv_options(args.registry_option, "--registry-option"))
    extra = _kv_options(args.kafka_option, "-X")
    for k in extra:
        if k == "group.id":
            raise SystemExit(f"{PROG}: -X group.id is fixed: the authority grants Read on consumer group {group}")
        if k in FIXED_CONSUMER_CONF:
            raise SystemExit(f"{PROG}: -X {k} is fixed by this reader ({str(FIXED_CONSUMER_CONF[k]).lower()})")
    conf = {"bootstrap.servers": args.brokers, "client.id": "epitrace-python-dead-letters",
            "auto.offset.reset": "earliest"}
    conf.update(extra)
    conf.update(FIXED_CONSUMER_CONF)
    conf["group.id"] = group
    timeout = args.timeout_s
    errors: list = []
    consumer = Consumer({**conf, "error_cb": lambda e: errors.append(e), "logger": _client_logger()})
    grant = (f"ask the health authority to grant this principal Read on topic {topic} and Read on consumer "
             f"group {group} (literal ACLs)")
    missing_codes = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION)

    def refused_or_missing(err) -> None:
        code = err.code()
        if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
            what = f"topic {topic}" if code == KafkaError.TOPIC_AUTHORIZATION_FAILED else f"consumer group {group}"
            consumer.close()
            raise SystemExit(f"{PROG}: access to {what} refused on {args.brokers} ({err.name()}): {grant}")
        if code in missing_codes:
            consumer.close()
            raise SystemExit(f"{PROG}: topic {topic} does not exist on {args.brokers} ({err.name()}): check "
                             f"--provider; the authority creates the topic when it configures provider {provider}; "
                             f"{grant}")

    deadline = time.monotonic() + timeout

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.001)

    try:
        md = consumer.list_topics(topic, timeout=remaining())
    except KafkaException as e:
        consumer.poll(0)
        consumer.close()
        if any(x.code() == KafkaError._AUTHENTICATION for x in errors):
            raise SystemExit(f"{PROG}: the brokers at {args.brokers} refused this client's credentials (see the "
                             "kafka client line above; -X sasl.username, sasl.password, sasl.mechanism)") from None
        raise SystemExit(f"{PROG}: no Kafka broker answered at {args.brokers} within {timeout:g} s ({e})") from None
    topic_md = md.topics.get(topic)
    if topic_md is None:
        refused_or_missing(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    if topic_md.error is not None:
        refused_or_missing(topic_md.error)
        consumer.close()
        raise SystemExit(f"{PROG}: topic {topic} on {args.brokers}: {topic_md.error.str()}")
    ends: dict = {}  # partition -> high watermark when the reader started
    for p in sorted(topic_md.partitions):
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=remaining(), cached=False)
        except KafkaException as e:
            refused_or_missing(e.args[0])
            consumer.close()
            raise SystemExit(f"{PROG}: the brokers at {args.brokers} did not give the end of {topic} partition {p} "
                             f"within {timeout:g} s ({e})") from None
        if high > low:
            ends[p] = high
    if ends:
        consumer.assign([TopicPartition(topic, p, -2) for p in sorted(ends)])  # -2: OFFSET_BEGINNING
    out = sys.stderr if args.json else sys.stdout
    read = undecodable = 0
    open_parts = set(ends)
    reported: set = set()

    def done(p: int) -> None:
        if p in open_parts:
            open_parts.discard(p)
            consumer.pause([TopicPartition(topic, p)])

    while open_parts:
        for e in errors:
            refused_or_missing(e)
        if time.monotonic() >= deadline:
            consumer.close()
            for e in sorted({str(e) for e in errors}):
                print(f"  client error: {e}", file=sys.stderr)
            raise SystemExit(
                f"{PROG}: timed out after {timeout:g} s with {len(open_parts)} partition(s) of {topic} not read to "
                f"their end ({read + undecodable} records read; the list above is incomplete): raise --timeout-s, "
                "or check the brokers")
        msg = consumer.poll(min(remaining(), 0.5))
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                done(msg.partition())
                continue
            refused_or_missing(err)
            if err.fatal():
                consumer.close()
                raise SystemExit(f"{PROG}: {topic}: {err.str()}")
            if err.str() not in reported:
                reported.add(err.str())
                print(f"kafka client: {err.str()}", file=sys.stderr)
            continue
        p, offset = msg.partition(), msg.offset()
        if p not in open_parts:
            continue
        if offset >= ends[p]:
            done(p)  # written after the reader started
            continue
        try:
            d = decoder.decode(msg.value())
        except Undecodable as e:
            undecodable += 1
            print(f"{PROG}: {topic} partition {p} offset {offset}: cannot decode this dead letter: {e}",
                  file=sys.stderr)
        except RegistryFailure as e:
            consumer.close()
            raise SystemExit(f"{PROG}: {e}") from None
        else:
            read += 1
            print(dead_letter_json(d) if args.json else dead_letter_line(d))
        if offset >= ends[p] - 1:
            done(p)
    consumer.close()  # assigned, nothing committed
    sys.stdout.flush()
    print(f"{read} dead letters on {topic}" + (f", {undecodable} undecodable" if undecodable else ""), file=out)
    return 0


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------

# The frame headers of epitrace's current schemas (`epitrace schemas`'
# frame_header); a new schema release changes them, and this kit with it.
EXPECTED_HEADERS = {
    "LocationPing": "c301bcb5a9c1096d66c6",
    "CardTransaction": "c30128275550ecafd7ed",
    "VenueCheckin": "c301eb9d5323bcf2e1a2",
}

# From the Avro specification's test suite (share/test/data/schema-tests.txt):
# schema, canonical form, fingerprint as a signed 64-bit integer.
AVRO_SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"int"}', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
     '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
     '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
     -4860222112080293046),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record","fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]

# Rows of each feed and how epitrace's producer answers them (the values are
# synthetic; the vectors' test key pseudonymises them).
_T_HEAD = "msisdn,provider,observed_at,lat,lng,accuracy_m,source,site_id"
SELFTEST_ROWS = [
    ("telecom", "010-1234-5678,telco-a,2020-05-01T12:00:00Z,37.5,127.0,200,cell,S1", None),
    ("telecom", "010-1234-5678,telco-a,2020-05-01T21:00:00+09:00,37.5,127.0,200,GPS,", None),
    ("telecom", "010-1234-5678,telco-a,1588334400000,91,127.0,200,CELL,S1",
     "lat/lng: latitude is not a finite number in [-90, 90]"),
    ("telecom", "010-1234-5678,010-9999-8888,2020-05-01T12:00:00Z,37.5,127.0,200,CELL,S1",
     "provider: " + RAW_ID_REFUSAL),
    ("telecom", "010-1234-5678,telco-z,2020-05-01T12:00:00Z,37.5,127.0,200,CELL,S1",
     "provider: not one of the configured providers (feeds.providers)"),
    ("telecom", "010-1234-5678,telco-a,2020-13-45T25:61:00Z,37.5,127.0,200,CELL,S1",
     "observed_at: not a valid date and time"),
    ("telecom", "010-1234-5678,telco-a,2020-05-01T12:00:00Z,37.5,127.0,1_0,CELL,S1",
     "accuracy_m: not a number"),
    ("telecom", "010-1234-5678,telco-a,2020-05-01T12:00:00Z,37.5,127.0,200,LTE,S1",
     "source: not one of: CELL, GPS or WIFI"),
    ("telecom", "010-1234-5678,telco-a,2020-05-01T12:00:00Z,37.5,127.0,200,CELL,4111 1111 1111 1111",
     "site_id: " + RAW_ID_REFUSAL),
    ("telecom", "010-CALL-ME,telco-a,2020-05-01T12:00:00Z,37.5,127.0,200,CELL,S1",
     "msisdn: contains a character that is not a digit or separator"),
    ("telecom", ",telco-a,2020-05-01T12:00:00Z,37.5,127.0,200,CELL,S1", "msisdn: missing"),
    ("telecom", "010-1234-5678,telco-a,2099-05-01T12:00:00Z,37.5,127.0,200,CELL,S1",
     "row: observed_at is more than 24 h after this producer's clock"),
    ("telecom", "010-1234-5678,telco-a", "row: 2 fields, the header has 8"),
]


def selftest(args) -> int:
    failures = 0
    checks = 0

    def report(ok: bool, what: str, detail: str = "") -> None:
        nonlocal failures, checks
        checks += 1
        if not ok:
            failures += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}{(': ' + detail) if detail else ''}")

    # 1. Pseudonym vectors.
    vectors_path = Path(args.vectors)
    try:
        doc = json.loads(vectors_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"FAIL cannot read {vectors_path}: {e}")
        return 1
    print(f"pseudonym vectors: {vectors_path.resolve()}")
    for i, v in enumerate(doc["vectors"], 1):
        key, kind = bytes.fromhex(v["key"]), v["kind"]
        label = f"vector {i} ({kind}, {len(key)}-byte key)"
        if "pseudonym" in v:
            try:
                norm = normalise_id(kind, v["raw"])
                got = pseudonym(key, kind, v["raw"]).hex()
            except IdError as e:
                report(False, label, f"refused ({e}), expected pseudonym {v['pseudonym']}")
                continue
            ok = got == v["pseudonym"] and norm == v["normalised"]
            report(ok, label, f"pseudonym {got}" + ("" if ok else f", expected {v['pseudonym']}"))
        else:
            try:
                pseudonym(key, kind, v["raw"])
                report(False, label, f"accepted, expected refusal {v['error']!r}")
            except IdError as e:
                report(str(e) == v["error"], label, f"refused: {e}"
                       + ("" if str(e) == v["error"] else f", expected {v['error']!r}"))
    # Key files: hex with whitespace, too short.
    try:
        k = parse_key(b" 0001020304050607 08090a0b0c0d0e0f\n101112131415161718191a1b1c1d1e1f\n")
        report(k == bytes(range(32)), "key file: hex with whitespace", f"{len(k)} bytes")
    except KeyError_ as e:
        report(False, "key file: hex with whitespace", str(e))
    try:
        parse_key(b"00" * 31)
        report(False, "key file: 31 bytes refused")
    except KeyError_ as e:
        report(str(e) == "31 bytes, at least 32 needed", "key file: 31 bytes refused", str(e))

    # 2. Canonical form and fingerprint against the Avro specification's vectors.
    for schema, canonical, fp in AVRO_SPEC_VECTORS:
        pcf = parsing_canonical_form(json.loads(schema))
        got = crc64_avro(pcf.encode())
        want = fp & 0xFFFFFFFFFFFFFFFF
        report(pcf == canonical and got == want, f"Avro spec canonical form + CRC-64-AVRO of {canonical}",
               f"{got:016x}" + ("" if pcf == canonical and got == want else f", expected {canonical} {want:016x}"))

    # 3. Single-object headers of the three feed records, computed from the .avsc files.
    schemas_dir = Path(args.schemas)
    print(f"schemas: {schemas_dir.resolve()}")
    binary_headers = {}
    if args.epitrace:
        import subprocess  # noqa: PLC0415

        out = subprocess.run([args.epitrace, "schemas", "--json"], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            try:
                d = json.loads(line)
                binary_headers[d["record"]] = d["frame_header"]
            except (ValueError, KeyError):
                continue
        report(out.returncode == 0 and bool(binary_headers), f"ran {args.epitrace} schemas --json",
               f"{len(binary_headers)} records")
    for feed in FEEDS.values():
        text = load_schema_text(schemas_dir, feed)
        got = single_object_header(text).hex()
        want = EXPECTED_HEADERS[feed.record]
        report(got == want, f"single-object header of {feed.record} ({feed.schema_file})",
               got + ("" if got == want else f", expected {want}"))
        if args.epitrace:
            b = binary_headers.get(feed.record)
            report(b == got, f"{feed.record} header equals `epitrace schemas --json` frame_header", str(b))

    # 4. Row validation: a few rows and epitrace's answer to each.
    import tempfile  # noqa: PLC0415

    key = bytes.fromhex(doc["vectors"][0]["key"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "telecom.csv"
        path.write_text(_T_HEAD + "\n" + "\n".join(r for _, r, _ in SELFTEST_ROWS) + "\n", encoding="utf-8")
        conv = RowConverter(FEEDS["telecom"], key, DEFAULT_PROVIDERS.split(","), int(time.time() * 1000))
        results = []
        for item in csv_rows(str(path), FEEDS["telecom"]):
            if isinstance(item, RowError):
                results.append((item.line, f"{item.column}: {item.reason}"))
                continue
            try:
                conv.convert(*item)
                results.append((item[0], None))
            except RowError as e:
                results.append((e.line, f"{e.column}: {e.reason}"))
        for n, ((_, _row, want), (line, got)) in enumerate(zip(SELFTEST_ROWS, results), 2):
            report(line == n and got == want, f"row check, line {n}",
                   (got or "accepted") + ("" if got == want else f", expected {want or 'accepted'}"))
        report(len(results) == len(SELFTEST_ROWS), "row check: every row answered", str(len(results)))
    # The encoded datum (fastavro) when installed.
    try:
        import fastavro  # noqa: PLC0415
    except ImportError:
        print("skip datum encoding check: fastavro is not installed (producer.sh installs it)")
    else:
        feed = FEEDS["telecom"]
        subj = pseudonym(key, "msisdn", "010-1234-5678")
        datum = {"subject": subj, "provider": "telco-a", "observed_at": 1588334400000, "lat": 37.5,
                 "lng": 127.0, "accuracy_m": 200.0, "source": "CELL", "site_id": None}
        text = load_schema_text(schemas_dir, feed)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(text)), datum)
        # Avro binary by hand: fixed, string, zig-zag long, 3 doubles LE, enum index, union index.
        import struct  # noqa: PLC0415

        def zz(n: int) -> bytes:
            n = (n << 1) ^ (n >> 63)
            out = bytearray()
            while n > 0x7F:
                out.append((n & 0x7F) | 0x80)
                n >>= 7
            out.append(n)
            return bytes(out)

        want = subj + zz(7) + b"telco-a" + zz(1588334400000) + struct.pack("<ddd", 37.5, 127.0, 200.0) + zz(0) + zz(0)
        report(buf.getvalue() == want, "LocationPing datum (fastavro) equals the Avro binary encoding",
               f"{len(want)} bytes")

    # 5. Dead letters: the provider id rule, the header of each feed, and a
    # DeadLetter single-object frame (header from --schemas, the datum
    # written by hand) through the dead-letters decoder, offline.
    for pid, ok in (("telco-a", True), ("Card_B.2", True), ("x" * 64, True), ("", False), ("bad id!", False),
                    ("x" * 65, False), ("telco:a", False)):
        try:
            provider_id(pid)
            accepted = True
        except argparse.ArgumentTypeError:
            accepted = False
        report(accepted == ok, f"--provider {pid[:12] + ('...' if len(pid) > 12 else '')!r} "
               + ("accepted" if ok else "refused"), "" if accepted == ok else ("accepted" if accepted else "refused"))
    header_cases = [
        (FEEDS["telecom"], {"provider": "telco-a"}, None, [(PROVIDER_HEADER, b"telco-a")]),
        (FEEDS["card"], {"issuer": "card-b"}, None, [(PROVIDER_HEADER, b"card-b")]),
        (FEEDS["checkin"], {}, None, None),
        (FEEDS["telecom"], {"provider": "telco-a"}, "telco-x", [(PROVIDER_HEADER, b"telco-x")]),
        (FEEDS["checkin"], {}, "venues-1", [(PROVIDER_HEADER, b"venues-1")]),
        (FEEDS["telecom"], {"provider": "telco:a"}, None, None),
    ]
    for feed, datum, flag, want in header_cases:
        got = provider_headers(feed, datum, flag)
        row = ", ".join(f"{k} {v}" for k, v in datum.items()) or "a check-in"
        report(got == want, f"{PROVIDER_HEADER} header of {row}{', --provider ' + flag if flag else ''}",
               str(got) + ("" if got == want else f", expected {want}"))
    try:
        import fastavro  # noqa: PLC0415, F401
    except ImportError:
        print("skip dead-letter decoding check: fastavro is not installed (producer.sh installs it)")
    else:
        def zz(n: int) -> bytes:
            n = (n << 1) ^ (n >> 63)
            out = bytearray()
            while n > 0x7F:
                out.append((n & 0x7F) | 0x80)
                n >>= 7
            out.append(n)
            return bytes(out)

        def avro_bytes(b: bytes) -> bytes:
            return zz(len(b)) + b

        dl = {"topic": "feeds.telecom.location", "partition": 3, "offset": 1234,
              "reason_code": "timestamp_in_future", "detail": "observed_at is more than 24 h ahead\nof the clock",
              "payload": b"\xc3\x01" + bytes(range(20)), "dead_lettered_at": 1588334400123}
        datum = (avro_bytes(dl["topic"].encode()) + zz(dl["partition"]) + zz(dl["offset"])
                 + avro_bytes(dl["reason_code"].encode()) + avro_bytes(dl["detail"].encode())
                 + avro_bytes(dl["payload"]) + zz(dl["dead_lettered_at"]))
        try:
            decoder = DeadLetterDecoder(schemas_dir, None, {})
        except SystemExit as e:
            report(False, "DeadLetter schema", str(e))
        else:
            frame = decoder.header + datum
            try:
                got = decoder.decode(frame)
                report(got == dl, f"DeadLetter single-object frame (header {decoder.header.hex()}) decodes to "
                       "its fields", "" if got == dl else f"got {got}")
            except Undecodable as e:
                got = None
                report(False, f"DeadLetter single-object frame (header {decoder.header.hex()}) decodes", str(e))
            if got is not None:
                line = dead_letter_line(got)
                want = ("feeds.telecom.location/3@1234 timestamp_in_future: observed_at is more than 24 h "
                        "ahead\\u000aof the clock (dead-lettered 2020-05-01T12:00:00.123Z, 22 bytes)")
                report(line == want, "dead-letters text line (payload length only)", line)
                obj = json.loads(dead_letter_json(got))
                ok = (list(obj) == ["topic", "partition", "offset", "reason_code", "detail", "dead_lettered_at",
                                    "payload_hex"] and obj["dead_lettered_at"] == "2020-05-01T12:00:00.123Z"
                      and obj["payload_hex"] == dl["payload"].hex() and obj["offset"] == 1234)
                report(ok, "dead-letters --json object", "" if ok else str(obj))
            for what, value in (("a value of neither framing", b"garbage!"),
                                ("an unknown fingerprint", b"\xc3\x01" + bytes(8) + datum),
                                ("a Confluent frame without --registry", b"\x00\x00\x00\x00\x07" + datum),
                                ("trailing bytes", frame + b"\x00"),
                                ("a datum cut short", frame[:-3]),
                                ("an empty value", b"")):
                try:
                    decoder.decode(value)
                    report(False, f"dead letter with {what} reported undecodable", "decoded")
                except Undecodable as e:
                    report(True, f"dead letter with {what} reported undecodable", str(e))
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def producer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="producer.sh",
        description="Publish an epitrace provider feed (CSV) to Kafka: pseudonymised, validated, "
        "Avro-encoded, keyed by the 16-byte subject pseudonym. `producer.sh dead-letters --help` "
        "describes reading your dead letters, `producer.sh selftest --help` the self-test.",
    )
    p.add_argument("--feed", required=True, choices=sorted(FEEDS),
                   help="which feed the file holds: telecom -> feeds.telecom.location (LocationPing), "
                   "card -> feeds.card.transaction (CardTransaction), checkin -> feeds.venue.checkin (VenueCheckin)")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="the CSV file, with the feed's header line (columns in any order; unknown columns refused)")
    p.add_argument("--key", required=True, metavar="FILE",
                   help="the health authority's pseudonymisation key: hex text (whitespace ignored), at least "
                   "32 bytes (64 hex digits)")
    p.add_argument("--brokers", default=os.environ.get("EPITRACE_BROKERS"), metavar="HOST:PORT[,...]",
                   help="Kafka bootstrap servers (default: $EPITRACE_BROKERS; one of the two is needed)")
    p.add_argument("--framing", choices=("confluent", "single-object"), default="single-object",
                   help="value framing: single-object = Avro single-object encoding (C3 01, 8-byte schema "
                   "fingerprint, datum; no server needed; the default); confluent = Confluent Schema Registry "
                   "framing (00, 4-byte schema id, datum) via confluent-kafka's AvroSerializer; needs --registry")
    p.add_argument("--registry", default=os.environ.get("EPITRACE_KAFKA_REGISTRY_URL"), metavar="URL",
                   help="Confluent-compatible Schema Registry base URL, for --framing confluent "
                   "(default: $EPITRACE_KAFKA_REGISTRY_URL)")
    p.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), metavar="DIR",
                   help="epitrace's schemas/ folder, the .avsc files (default: ../../../schemas from this kit, "
                   "i.e. the epitrace repository's)")
    p.add_argument("--providers", default=DEFAULT_PROVIDERS, metavar="LIST",
                   help="comma-separated values accepted in the provider (telecom) and issuer (card) columns; "
                   f"an empty string accepts any identifier (default: {DEFAULT_PROVIDERS})")
    p.add_argument("--provider", type=provider_id, metavar="ID",
                   help=f"your provider id, sent in the {PROVIDER_HEADER} header of every record so that their "
                   f"dead letters are copied to {PROVIDER_DEADLETTER_PREFIX}<ID> ({PROVIDER_ID_RULE}); default: "
                   "each row's provider (telecom) or issuer (card) column; check-ins carry no header without it, "
                   "so venue operators pass it")
    p.add_argument("--max-bad-share", type=float, default=0.01, metavar="SHARE",
                   help="exit 1 when more than this share of the rows (0..1) is bad; bad rows are skipped either "
                   "way (default: 0.01)")
    p.add_argument("--quiet", action="store_true",
                   help="do not report bad rows and progress on stderr (the summary line still goes to stdout)")
    p.add_argument("-X", "--kafka-option", action="append", metavar="KEY=VALUE",
                   help="an extra librdkafka producer property, e.g. -X security.protocol=SASL_SSL "
                   "-X sasl.mechanism=SCRAM-SHA-512 -X ssl.ca.location=ca.pem; repeatable; enable.idempotence, "
                   "acks and partitioner are fixed")
    p.add_argument("--registry-option", action="append", metavar="KEY=VALUE",
                   help="an extra SchemaRegistryClient setting, e.g. basic.auth.user.info=USER:PASSWORD or "
                   "ssl.ca.location=ca.pem; repeatable")
    return p


def positive_seconds(value: str) -> float:
    """argparse type of --timeout-s."""
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return v


def dead_letters_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="producer.sh dead-letters",
        description=f"Print your dead letters: every DeadLetter on {PROVIDER_DEADLETTER_PREFIX}<ID>, every "
        "partition from the beginning up to where it ended when the reader started, then exit. Text: one line "
        "per dead letter (where the record was, reason, detail, when, payload length; never the payload) and a "
        "summary line on stdout. Needs Read on that topic and on consumer group deadletters.<ID> (ask the health "
        "authority); no offsets are committed. Exit status: 0 read (even with undecodable records), 1 topic "
        "missing, access refused, brokers or registry unreachable, or --timeout-s exceeded, 2 wrong command line.",
    )
    p.add_argument("--provider", required=True, type=provider_id, metavar="ID",
                   help=f"your provider id: reads topic {PROVIDER_DEADLETTER_PREFIX}<ID> as consumer group "
                   f"deadletters.<ID> ({PROVIDER_ID_RULE})")
    p.add_argument("--brokers", default=os.environ.get("EPITRACE_BROKERS"), metavar="HOST:PORT[,...]",
                   help="Kafka bootstrap servers (default: $EPITRACE_BROKERS; one of the two is needed)")
    p.add_argument("--registry", default=os.environ.get("EPITRACE_KAFKA_REGISTRY_URL"), metavar="URL",
                   help="Confluent-compatible Schema Registry base URL, to decode dead letters in Confluent "
                   "framing (epitrace's output_framing = confluent) (default: $EPITRACE_KAFKA_REGISTRY_URL)")
    p.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), metavar="DIR",
                   help="epitrace's schemas/ folder, for dead_letter.avsc (default: ../../../schemas from this kit)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per dead letter on stdout (topic, partition, offset, reason_code, detail, "
                   "dead_lettered_at, payload_hex -- the payload is personal data), the summary on stderr")
    p.add_argument("--timeout-s", type=positive_seconds, default=30.0, metavar="N",
                   help="give up (exit 1) when the topic is not read to its end within N seconds, the brokers' "
                   "first answer included (default: 30)")
    p.add_argument("-X", "--kafka-option", action="append", metavar="KEY=VALUE",
                   help="an extra librdkafka consumer property, e.g. -X security.protocol=SASL_SSL "
                   "-X sasl.mechanism=SCRAM-SHA-512 -X ssl.ca.location=ca.pem; repeatable; group.id, "
                   "enable.auto.commit and enable.partition.eof are fixed")
    p.add_argument("--registry-option", action="append", metavar="KEY=VALUE",
                   help="an extra SchemaRegistryClient setting, e.g. basic.auth.user.info=USER:PASSWORD or "
                   "ssl.ca.location=ca.pem; repeatable")
    return p


def selftest_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="producer.sh selftest",
        description="Check the pseudonyms against epitrace's published vectors (pseudonyms and refusals), "
        "the canonical form and fingerprint code against the Avro specification's vectors, the "
        "single-object headers of LocationPing, CardTransaction and VenueCheckin computed from the .avsc "
        "files against the expected ones, the row validation on sample rows, the epitrace.provider header, "
        "and the decoding of a DeadLetter frame built from dead_letter.avsc (offline, as dead-letters reads it). "
        "Exits 1 on any mismatch.",
    )
    p.add_argument("--vectors", default=str(DEFAULT_VECTORS), metavar="FILE",
                   help="epitrace's pseudonym test vectors (default: ../pseudonym-vectors.json from this kit)")
    p.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), metavar="DIR",
                   help="epitrace's schemas/ folder (default: ../../../schemas from this kit)")
    p.add_argument("--epitrace", metavar="BINARY",
                   help="also compare the headers with what this epitrace binary prints (`epitrace schemas --json`)")
    return p


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["selftest"]:
        return selftest(selftest_parser().parse_args(argv[1:]))
    if argv[:1] == ["dead-letters"]:
        try:
            return dead_letters(dead_letters_parser().parse_args(argv[1:]))
        except BrokenPipeError:  # `dead-letters | head`: stdout closed early
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if argv[:1] == ["produce"]:
        argv = argv[1:]
    return produce(producer_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
