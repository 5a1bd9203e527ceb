#!/usr/bin/env python3
"""End-to-end check of the Python kit against epitrace's own producer.

For each feed file of a simulated city (`epitrace sim`), on a running broker
with epitrace's topics (and, for Confluent framing, a registry holding
epitrace's schemas):

1. `epitrace produce` publishes the file (the reference), then the kit
   publishes it; each run's records are told apart by the end offsets taken
   before and after it (nothing is reset);
2. the published and bad-row counts, and the bad-row lines on stderr, must be
   equal;
3. every record the kit wrote is read back and checked on its own: a 16-byte
   key equal to HMAC-SHA-256(key, domain || number of its CSV row) (computed
   here independently of the kit), the partition equal to the Java client's
   murmur2(key) % partitions, the frame (00 + the registry id of the
   subject's current schema, or the single-object header `epitrace schemas
   --json` prints), and the datum, decoded with fastavro, equal to the
   values of a row of the file;
4. per partition, the kit's (key, datum) sequence must equal epitrace's.

Usage (PYTHONPATH must reach confluent-kafka and fastavro, e.g. the kit's .deps/):

    PYTHONPATH=deploy/providers/python/.deps python3 deploy/providers/python/tests/check_against_rust.py \\
        --epitrace target/debug/epitrace --brokers 127.0.0.1:29092 \\
        --registry http://127.0.0.1:28081/apis/ccompat/v7 --city /tmp/city \\
        --run telecom:confluent --run card:single-object --run checkin:single-object
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, TopicPartition

KIT = Path(__file__).resolve().parent.parent
TOPICS = {"telecom": "feeds.telecom.location", "card": "feeds.card.transaction", "checkin": "feeds.venue.checkin"}
SCHEMA_FILES = {"telecom": "location_ping.avsc", "card": "card_transaction.avsc", "checkin": "venue_checkin.avsc"}
RECORDS = {"telecom": "LocationPing", "card": "CardTransaction", "checkin": "VenueCheckin"}


def murmur2(data: bytes) -> int:
    """Kafka's Java client Utils.murmur2 (as a signed 32-bit int)."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = data[4 * i] | data[4 * i + 1] << 8 | data[4 * i + 2] << 16 | data[4 * i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail, rem = length & ~3, length % 4
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# Kafka's own test vectors (clients/src/test/.../UtilsTest.java).
MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def hmac_key(key: bytes, kind: str, raw: str) -> bytes:
    norm = re.sub(r"[ \-.()]", "", raw.strip())
    domain = b"epitrace/v1/msisdn:" if kind == "msisdn" else b"epitrace/v1/card:"
    return hmac.new(key, domain + norm.encode(), hashlib.sha256).digest()[:16]


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))")


def ms(s: str) -> int:
    s = s.strip()
    if s.isdigit():
        return int(s)
    m = _RFC3339.fullmatch(s)
    y, mo, d, h, mi, se, frac, sign, oh, om = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(se), tzinfo=timezone.utc)
    t = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    t += int((frac or "0")[:3].ljust(3, "0"))
    if sign:
        t -= (1 if sign == "+" else -1) * (int(oh) * 3_600_000 + int(om) * 60_000)
    return t


def expected_rows(feed: str, path: Path, key: bytes) -> Counter:
    """Every row of the file that parses, as the datum it should become (lenient: a superset)."""
    out = Counter()
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        for row in csv.DictReader(f):
            try:
                if feed == "telecom":
                    d = (hmac_key(key, "msisdn", row["msisdn"]), row["provider"].strip(), ms(row["observed_at"]),
                         float(row["lat"]), float(row["lng"]), float(row["accuracy_m"]), row["source"].strip().upper(),
                         (row.get("site_id") or "").strip() or None)
                elif feed == "card":
                    d = (hmac_key(key, "card", row["card_number"]), row["issuer"].strip(), row["merchant_id"].strip(),
                         int(row["mcc"]), float(row["lat"]), float(row["lng"]), float(row["accuracy_m"]),
                         ms(row["observed_at"]))
                else:
                    co = (row.get("checkout_at") or "").strip()
                    d = (hmac_key(key, "msisdn", row["msisdn"]), row["venue_id"].strip(), float(row["lat"]),
                         float(row["lng"]), ms(row["checkin_at"]), ms(co) if co else None)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            out[d] += 1
    return out


def _millis(t):
    """fastavro reads timestamp-millis as an aware datetime: back to epoch milliseconds."""
    if isinstance(t, datetime):
        return (t - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    return t


def datum_tuple(feed: str, d: dict) -> tuple:
    d = {k: _millis(v) for k, v in d.items()}
    if feed == "telecom":
        return (d["subject"], d["provider"], d["observed_at"], d["lat"], d["lng"], d["accuracy_m"], d["source"],
                d["site_id"])
    if feed == "card":
        return (d["subject"], d["issuer"], d["merchant_id"], d["mcc"], d["lat"], d["lng"], d["accuracy_m"],
                d["observed_at"])
    return (d["subject"], d["venue_id"], d["lat"], d["lng"], d["observed_at"], d["checkout_at"])


def end_offsets(consumer: Consumer, topic: str) -> dict:
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    out = {}
    for p in md.partitions:
        _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        out[p] = hi
    return out


def read_range(consumer: Consumer, topic: str, start: dict, end: dict) -> dict:
    """partition -> [(key, value)] for offsets [start, end)."""
    want = {p: end[p] - start[p] for p in start if end[p] > start[p]}
    out = defaultdict(list)
    if not want:
        return out
    consumer.assign([TopicPartition(topic, p, start[p]) for p in want])
    while any(len(out[p]) < n for p, n in want.items()):
        msg = consumer.poll(5)
        if msg is None:
            raise SystemExit(f"timed out reading {topic}")
        if msg.error():
            raise SystemExit(f"consumer: {msg.error()}")
        p = msg.partition()
        if msg.offset() < end[p]:
            out[p].append((msg.key(), msg.value()))
    consumer.unassign()
    return out


def bad_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if re.match(r"^\S+:\d+: [a-z_/]+: ", line)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epitrace", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--registry")
    ap.add_argument("--city", required=True, type=Path)
    ap.add_argument("--schemas", type=Path, default=KIT / ".." / ".." / ".." / "schemas")
    ap.add_argument("--run", action="append", required=True, metavar="FEED:FRAMING")
    args = ap.parse_args()

    failures = []

    def check(ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    for data, want in MURMUR2_VECTORS.items():
        check(murmur2(data) == want, f"murmur2({data.decode()}) = {want} (Kafka's test vector)")

    key_file = args.city / "pseudonym.key"
    key = bytes.fromhex(key_file.read_text().strip())
    headers = {}
    for line in subprocess.run([args.epitrace, "schemas", "--json"], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        d = json.loads(line)
        headers[d["record"]] = bytes.fromhex(d["frame_header"])
    consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": "kit-py-check", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    for run in args.run:
        feed, framing = run.split(":")
        topic, input_ = TOPICS[feed], args.city / f"{feed}.csv"
        schema = fastavro.parse_schema(json.loads((args.schemas / SCHEMA_FILES[feed]).read_text()))
        print(f"== {feed} ({input_}) -> {topic}, kit framing {framing}")
        s0 = end_offsets(consumer, topic)
        rust = subprocess.run([args.epitrace, "produce", "--feed", feed, "--input", str(input_), "--key",
                               str(key_file), "--brokers", args.brokers, "--max-bad-share", "1"],
                              capture_output=True, text=True, check=False)
        m = re.search(r": (\d+) rows, (\d+) published, (\d+) bad", rust.stdout)
        check(rust.returncode == 0 and m is not None, f"epitrace produce exit {rust.returncode}: "
              f"{m.group(0)[2:] if m else rust.stdout.strip()[:200]}")
        r_rows, r_pub, r_bad = (int(x) for x in m.groups())
        s1 = end_offsets(consumer, topic)
        cmd = [str(KIT / "producer.sh"), "--feed", feed, "--input", str(input_), "--key", str(key_file),
               "--brokers", args.brokers, "--framing", framing, "--max-bad-share", "1"]
        if framing == "confluent":
            cmd += ["--registry", args.registry]
        kit = subprocess.run(cmd, capture_output=True, text=True, check=False)
        km = re.fullmatch(r"published (\d+) records to (\S+), (\d+) bad rows skipped \(framing (\S+)\)\n",
                          kit.stdout)
        check(kit.returncode == 0 and km is not None, f"kit exit {kit.returncode}, stdout {kit.stdout.strip()!r}")
        k_pub, k_bad = int(km.group(1)), int(km.group(3))
        s2 = end_offsets(consumer, topic)
        check(k_pub == r_pub and k_bad == r_bad,
              f"counts: kit published {k_pub}, bad {k_bad}; epitrace published {r_pub}, bad {r_bad} ({r_rows} rows)")
        rb, kb = bad_lines(rust.stderr), bad_lines(kit.stderr)
        if rb == kb:
            check(True, f"bad-row reports identical, line by line ({len(kb)} lines)")
        else:
            # The kit numbers a row by the physical line where it starts;
            # epitrace's CSV reader numbers rows lower in files with CRLF or
            # CR line ends or blank lines. Columns and reasons must agree.
            strip = lambda ls: [re.sub(r"^\S+:\d+: ", "", x) for x in ls]  # noqa: E731
            same = strip(rb) == strip(kb)
            check(same, f"bad-row reports: same columns and reasons in the same order ({len(kb)} lines); "
                  f"line numbers differ on {sum(a != b for a, b in zip(rb, kb))}")
            for a, b in [(a, b) for a, b in zip(rb, kb) if a != b][:5]:
                print(f"     epitrace: {a}\n     kit:      {b}")
        r_msgs = read_range(consumer, topic, s0, s1)
        k_msgs = read_range(consumer, topic, s1, s2)
        n_parts = len(s0)
        check(sum(map(len, r_msgs.values())) == r_pub and sum(map(len, k_msgs.values())) == k_pub,
              f"read back {sum(map(len, k_msgs.values()))} kit records and {sum(map(len, r_msgs.values()))} "
              f"epitrace records over {n_parts} partitions")
        if framing == "confluent":
            with urllib.request.urlopen(f"{args.registry}/subjects/{topic}-value/versions/latest", timeout=10) as r:
                sid = json.load(r)["id"]
            prefix, strip = b"\x00" + sid.to_bytes(4, "big"), 5
            print(f"     registry: {topic}-value latest = id {sid}")
        else:
            prefix, strip = headers[RECORDS[feed]], 10
        rows = expected_rows(feed, input_, key)
        bad_key = bad_part = bad_frame = bad_subject = unmatched = 0
        for p, msgs in k_msgs.items():
            for k, v in msgs:
                bad_key += len(k) != 16
                bad_part += java_partition(k, n_parts) != p
                bad_frame += not v.startswith(prefix)
                d = fastavro.schemaless_reader(io.BytesIO(v[strip:]), schema, None)
                bad_subject += d["subject"] != k
                t = datum_tuple(feed, d)
                if rows[t] > 0:
                    rows[t] -= 1
                else:
                    unmatched += 1
        total = k_pub
        check(bad_key == 0, f"every key is 16 bytes ({total - bad_key}/{total})")
        check(bad_part == 0, f"every partition = murmur2(key) % {n_parts} ({total - bad_part}/{total})")
        check(bad_frame == 0, f"every value starts with {prefix.hex()} ({total - bad_frame}/{total})")
        check(bad_subject == 0, f"every datum's subject equals its key ({total - bad_subject}/{total})")
        check(unmatched == 0, f"every datum equals a row of the file, key = HMAC of its number "
              f"({total - unmatched}/{total})")
        same = all(
            [(k, v[strip:]) for k, v in k_msgs.get(p, [])] == [(k, v[10:]) for k, v in r_msgs.get(p, [])]
            for p in range(n_parts)
        )
        check(same, "per partition, the kit's keys and datums equal epitrace's, in order")
    consumer.close()
    print(f"{len(failures)} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
