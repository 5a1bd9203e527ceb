package dev.epitrace.producer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

/**
 * {@code --self-test}: checks, without Kafka, that this build computes what epitrace computes.
 *
 * <ol>
 *   <li>Every vector of {@code deploy/providers/pseudonym-vectors.json}: the normalised id and
 *       the pseudonym, or the refusal with its exact text.
 *   <li>The single-object header ({@code C3 01} + fingerprint) of LocationPing, CardTransaction
 *       and VenueCheckin, from the schemas folder, against what {@code epitrace schemas --json}
 *       prints as {@code frame_header}; a record framed and read back.
 *   <li>The row rules on a few sample rows (refusals and their messages, quoting, line numbers).
 * </ol>
 */
final class SelfTest {
    private SelfTest() {}

    /**
     * {@code frame_header} of each feed record, as printed by {@code epitrace schemas --json} for
     * the schemas this kit was written against. When epitrace's schemas change (a new release in
     * schemas/released/), update these from that command's output.
     */
    static final Map<Feed, String> EXPECTED_HEADERS = new LinkedHashMap<>();

    static {
        EXPECTED_HEADERS.put(Feed.TELECOM, "c301bcb5a9c1096d66c6");
        EXPECTED_HEADERS.put(Feed.CARD, "c30128275550ecafd7ed");
        EXPECTED_HEADERS.put(Feed.CHECKIN, "c301eb9d5323bcf2e1a2");
    }

    /** {@code frame_header} of DeadLetter (schemas/dead_letter.avsc), the values of pipeline.deadletter*. */
    static final String EXPECTED_DEAD_LETTER_HEADER = "c301fe5548ad74428feb";

    private static int passed;
    private static int failed;

    private static void check(PrintStream out, boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
        }
        out.println((ok ? "ok    " : "FAIL  ") + what);
    }

    static boolean run(Path vectorsFile, Path schemas, PrintStream out) {
        passed = 0;
        failed = 0;
        out.println("self-test: pseudonym vectors from " + vectorsFile);
        vectors(vectorsFile, out);
        out.println("self-test: single-object headers of the schemas in " + schemas);
        headers(schemas, out);
        out.println("self-test: row rules on sample rows");
        rows(schemas, out);
        out.println("self-test: the epitrace.provider header and --provider");
        providerHeader(schemas, out);
        out.println("self-test: dead letters (dead-letters) decoded from frames built with the schemas in " + schemas);
        deadLetters(schemas, out);
        out.println(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0;
    }

    private static void vectors(Path file, PrintStream out) {
        Object doc;
        try {
            doc = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException | IllegalArgumentException e) {
            check(out, false, "read " + file + " (" + e.getClass().getSimpleName() + ")");
            return;
        }
        Object list = doc instanceof Map ? ((Map<?, ?>) doc).get("vectors") : null;
        Object rule = doc instanceof Map ? ((Map<?, ?>) doc).get("rule") : null;
        check(out, rule instanceof String && ((String) rule).contains("'epitrace/v1/msisdn:'")
                        && ((String) rule).contains("'epitrace/v1/card:'") && ((String) rule).contains("first 16 bytes of HMAC-SHA-256"),
                "the file's rule names the HMAC-SHA-256 truncation and both domains this kit uses");
        if (!(list instanceof List) || ((List<?>) list).isEmpty()) {
            check(out, false, "the file has a non-empty \"vectors\" list");
            return;
        }
        int n = 0;
        for (Object o : (List<?>) list) {
            n++;
            Map<?, ?> v = (Map<?, ?>) o;
            String kindName = (String) v.get("kind");
            String raw = (String) v.get("raw");
            byte[] key = Text.unhex((String) v.get("key"));
            Pseudonymizer.Kind kind = Pseudonymizer.Kind.of(kindName);
            // The raw ids are the file's synthetic test numbers; they are not printed all the same.
            String label = "vector " + n + " (" + kindName + ", " + key.length + "-byte key)";
            Object expectedError = v.get("error");
            try {
                String normalised = Pseudonymizer.normalise(kind, raw);
                byte[] pseudonym = new Pseudonymizer(key).subject(kind, raw);
                if (expectedError != null) {
                    check(out, false, label + ": expected the refusal \"" + expectedError + "\", got a pseudonym");
                    continue;
                }
                check(out, normalised.equals(v.get("normalised")), label + ": normalised as the file says");
                check(out, Text.hex(pseudonym).equals(v.get("pseudonym")),
                        label + ": pseudonym " + Text.hex(pseudonym) + (Text.hex(pseudonym).equals(v.get("pseudonym"))
                                ? "" : ", expected " + v.get("pseudonym")));
            } catch (Pseudonymizer.InvalidId e) {
                if (expectedError == null) {
                    check(out, false, label + ": expected a pseudonym, got the refusal \"" + e.getMessage() + "\"");
                } else {
                    check(out, e.getMessage().equals(expectedError), label + ": refused with \"" + e.getMessage() + "\""
                            + (e.getMessage().equals(expectedError) ? "" : ", expected \"" + expectedError + "\""));
                    check(out, raw.isEmpty() || !e.getMessage().contains(Text.trim(raw)), label + ": the refusal does not repeat the id");
                }
            }
        }
    }

    private static void headers(Path schemas, PrintStream out) {
        for (Map.Entry<Feed, String> e : EXPECTED_HEADERS.entrySet()) {
            Feed feed = e.getKey();
            Schema schema;
            try {
                schema = Main.parseSchema(schemas, feed, Main.schemaText(schemas, feed));
            } catch (KitException ex) {
                check(out, false, feed.record + ": " + ex.getMessage());
                continue;
            }
            Framing.SingleObject so = new Framing.SingleObject(schema);
            String header = Text.hex(so.header());
            check(out, header.equals(e.getValue()), feed.record + " single-object header " + header
                    + (header.equals(e.getValue()) ? " = epitrace schemas --json frame_header" : ", expected " + e.getValue()));
            GenericRecord sample = sample(feed, schema);
            byte[] frame = so.frame(sample);
            check(out, Text.hex(Arrays.copyOf(frame, 10)).equals(e.getValue()),
                    feed.record + " frame from Avro's BinaryMessageEncoder opens with that header");
            try {
                GenericRecord back = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), schema).decode(frame);
                check(out, back.equals(sample), feed.record + " frame reads back as the record written");
            } catch (IOException | RuntimeException ex) {
                check(out, false, feed.record + " frame reads back (" + ex.getClass().getSimpleName() + ")");
            }
            Framing.Confluent cf = new Framing.Confluent(schema, 258);
            byte[] cframe = cf.frame(sample);
            check(out, Text.hex(Arrays.copyOf(cframe, 5)).equals("0000000102")
                            && Arrays.equals(Arrays.copyOfRange(cframe, 5, cframe.length), Arrays.copyOfRange(frame, 10, frame.length)),
                    feed.record + " Confluent frame = 00 + id (big-endian) + the same datum");
        }
    }

    private static GenericRecord sample(Feed feed, Schema schema) {
        GenericRecord r = new GenericData.Record(schema);
        byte[] subject = new byte[16];
        Arrays.fill(subject, (byte) 7);
        r.put("subject", new GenericData.Fixed(schema.getField("subject").schema(), subject));
        switch (feed) {
            case TELECOM:
                r.put("provider", "telco-a");
                r.put("observed_at", 1_588_424_700_000L);
                r.put("lat", 37.5344);
                r.put("lng", 126.9946);
                r.put("accuracy_m", 150.0);
                r.put("source", new GenericData.EnumSymbol(schema.getField("source").schema(), "CELL"));
                r.put("site_id", "S1");
                break;
            case CARD:
                r.put("issuer", "card-a");
                r.put("merchant_id", "M1");
                r.put("mcc", 5812);
                r.put("lat", 37.5344);
                r.put("lng", 126.9946);
                r.put("accuracy_m", 20.0);
                r.put("observed_at", 1_588_424_700_000L);
                break;
            default:
                r.put("venue_id", "V1");
                r.put("lat", 37.5344);
                r.put("lng", 126.9946);
                r.put("observed_at", 1_588_424_700_000L);
                r.put("checkout_at", null);
        }
        return r;
    }

    /** A row and the outcome the Rust reader gives it: null = accepted, else "LINE: column: reason". */
    private static void rows(Path schemas, PrintStream out) {
        byte[] key = new byte[32];
        for (int k = 0; k < key.length; k++) {
            key[k] = (byte) k;
        }
        Pseudonymizer p = new Pseudonymizer(key);
        String telecom = "msisdn,provider,observed_at,lat,lng,accuracy_m,source,site_id\n"
                + "010-1234-5678,telco-a,2020-05-02T13:05:00Z,37.5,127.0,200,CELL,S1\n"
                + "\"010-1234-5678\",\"telco-a\",\"2020-05-02T22:05:00.5+09:00\",37.5,127.0,200,gps,\n"
                + "01012345678,010-9999-8888,2020-05-02T13:05:00Z,37.5,127.0,200,CELL,\n"
                + "01012345678,telco-z,2020-05-02T13:05:00Z,37.5,127.0,200,CELL,\n"
                + "01012345678,telco-a,2020-13-45T25:61:00Z,37.5,127.0,200,CELL,\n"
                + "01012345678,telco-a,1588424700000,95.1,127.0,200,CELL,\n"
                + "01012345678,telco-a,1588424700000,37.5,127.0,-1,CELL,\n"
                + "01012345678,telco-a,1588424700000,37.5,127.0,200,LTE,\n"
                + "01012345678,telco-a,1588424700000,37.5,127.0,200,CELL,4111 1111 1111 1111\n"
                + "01012345678,telco-a,1588424700000,37.5,127.0,200,CELL,S 1\n"
                + ",telco-a,1588424700000,37.5,127.0,200,CELL,S1\n"
                + "010-CALL-ME,telco-a,1588424700000,37.5,127.0,200,CELL,S1\n"
                + "01012345678,telco-a,1588424700000,37.5\n"
                + "01012345678,telco-a,\"1588424700000\n\",37.5,127.0,x,CELL,S1\n"
                + "01012345678,telco-a,4102444800000,37.5,127.0,200,CELL,S1\n"
                + "01012345678,telco-a,1588424700000,37.5,127.0,1e2,CELL,S1\n";
        String[] expected = {
            null,
            null,
            "4: provider: looks like a raw phone or card number; refused so that it never leaves this process",
            "5: provider: not one of the configured providers (feeds.providers)",
            "6: observed_at: not a valid date and time",
            "7: lat/lng: latitude is not a finite number in [-90, 90]",
            "8: accuracy_m: not a finite number in [0, 100000] m",
            "9: source: not one of: CELL, GPS or WIFI",
            "10: site_id: looks like a raw phone or card number; refused so that it never leaves this process",
            "11: site_id: invalid identifier: characters outside [A-Za-z0-9._:-]",
            "12: msisdn: missing",
            "13: msisdn: contains a character that is not a digit or separator",
            "14: row: 4 fields, the header has 8",
            "15: accuracy_m: not a number",
            "17: observed_at: outside 2000-01-01 .. 2100-01-01",
            null,
        };
        try (CsvReader csv = new CsvReader(new ByteArrayInputStream(telecom.getBytes(StandardCharsets.UTF_8)))) {
            Schema schema = Main.parseSchema(schemas, Feed.TELECOM, Main.schemaText(schemas, Feed.TELECOM));
            RowConverter conv = new RowConverter(Feed.TELECOM, schema, p, RowConverter.DEFAULT_PROVIDERS,
                    System.currentTimeMillis(), "sample.csv", csv.next().fields);
            int k = 0;
            CsvReader.Record rec;
            while ((rec = csv.next()) != null) {
                String got;
                try {
                    conv.convert(rec);
                    got = null;
                } catch (RowError e) {
                    got = e.line + ": " + e.column + ": " + e.reason;
                }
                String want = k < expected.length ? expected[k] : "(no more rows expected)";
                boolean ok = want == null ? got == null : want.equals(got);
                check(out, ok, "sample row " + (k + 1) + ": " + (want == null ? "accepted" : want)
                        + (ok ? "" : " — got " + (got == null ? "accepted" : got)));
                k++;
            }
            check(out, k == expected.length, "sample rows: " + k + " read, " + expected.length + " expected");
        } catch (IOException | KitException e) {
            check(out, false, "sample rows (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")");
        }
        // Both spellings of a row give the same record; lowercase source is read as the symbol.
        try (CsvReader csv = new CsvReader(new ByteArrayInputStream(("\uFEFFsource,lat,lng,accuracy_m,observed_at,provider,msisdn\r\n"
                + "GPS,37.5,127.0,15,2020-05-02T13:05:00Z,telco-b,+82 10 1234 5678\r\n"
                + "\r\n"
                + "gps,37.5,127.0,15,2020-05-02T22:05:00+09:00,telco-b,+821012345678\r\n").getBytes(StandardCharsets.UTF_8)))) {
            Schema schema = Main.parseSchema(schemas, Feed.TELECOM, Main.schemaText(schemas, Feed.TELECOM));
            RowConverter conv = new RowConverter(Feed.TELECOM, schema, p, RowConverter.DEFAULT_PROVIDERS,
                    System.currentTimeMillis(), "sample.csv", csv.next().fields);
            CsvReader.Record a = csv.next();
            CsvReader.Record b = csv.next();
            RowConverter.Converted ca = conv.convert(a);
            RowConverter.Converted cb = conv.convert(b);
            check(out, a.line == 2 && b.line == 4, "CRLF, a byte order mark and a blank line: rows on lines 2 and 4");
            check(out, ca.value.equals(cb.value) && Text.hex(ca.key).equals("e7e9bd2d0f2055b25eaa47875e9c1cd0"),
                    "columns in another order, an offset time and a lowercase symbol give the same record and key");
            check(out, ca.value.get("site_id") == null, "an absent optional column is null");
        } catch (IOException | KitException | RowError e) {
            check(out, false, "reordered columns (" + e.getClass().getSimpleName() + ")");
        }
        try {
            RowConverter.headerIndex(Feed.CARD, "f.csv", List.of("01012345678", "issuer", "merchant_id", "mcc",
                    "observed_at", "lat", "lng", "accuracy_m"));
            check(out, false, "a header without card_number is refused");
        } catch (KitException e) {
            check(out, e.getMessage().equals("f.csv: header \"<not a column name>,issuer,merchant_id,mcc,observed_at,lat,lng,accuracy_m\""
                    + " is not the card header \"card_number,issuer,merchant_id,mcc,observed_at,lat,lng,accuracy_m\""),
                    "a header with a value in it is refused without quoting the value");
        }
    }

    private static void providerHeader(Path schemas, PrintStream out) {
        Schema telecom;
        Schema card;
        Schema checkin;
        try {
            telecom = Main.parseSchema(schemas, Feed.TELECOM, Main.schemaText(schemas, Feed.TELECOM));
            card = Main.parseSchema(schemas, Feed.CARD, Main.schemaText(schemas, Feed.CARD));
            checkin = Main.parseSchema(schemas, Feed.CHECKIN, Main.schemaText(schemas, Feed.CHECKIN));
        } catch (KitException e) {
            check(out, false, "provider header: " + e.getMessage());
            return;
        }
        GenericRecord ping = sample(Feed.TELECOM, telecom);
        GenericRecord payment = sample(Feed.CARD, card);
        GenericRecord visit = sample(Feed.CHECKIN, checkin);
        check(out, "telco-a".equals(Main.providerHeader(null, Feed.TELECOM, ping)),
                "telecom without --provider: header epitrace.provider = the row's provider");
        check(out, "card-a".equals(Main.providerHeader(null, Feed.CARD, payment)),
                "card without --provider: header epitrace.provider = the row's issuer");
        check(out, Main.providerHeader(null, Feed.CHECKIN, visit) == null, "checkin without --provider: no header");
        check(out, "venue-op_1.kr".equals(Main.providerHeader("venue-op_1.kr", Feed.CHECKIN, visit))
                        && "telco-b".equals(Main.providerHeader("telco-b", Feed.TELECOM, ping)),
                "with --provider: header epitrace.provider = the flag's value, whatever the row says");
        ping.put("provider", "telco:a");
        check(out, Main.providerHeader(null, Feed.TELECOM, ping) == null,
                "a provider value that cannot name a topic (':') sends no header");
        for (String bad : new String[] {"bad id!", "", "telco:a", "a/b", "\u00e9", "x".repeat(65)}) {
            String shown = bad.isEmpty() ? "(empty)" : bad.length() > 20 ? bad.length() + " characters" : bad;
            try {
                Options.parse(new String[] {"--feed", "telecom", "--input", "f.csv", "--key", "k", "--provider", bad});
                check(out, false, "--provider " + shown + " is refused");
            } catch (Options.UsageError e) {
                check(out, e.getMessage().startsWith("--provider must be") && (bad.isEmpty() || !e.getMessage().contains(bad)),
                        "--provider " + shown + " is refused (a usage error, the value not repeated)");
            }
        }
        try {
            Options ok = Options.parse(new String[] {"dead-letters", "--provider", "x".repeat(64), "-X", "security.protocol=SSL"});
            check(out, ok.deadLetters && ok.provider.length() == 64 && "SSL".equals(ok.kafkaOptions.get("security.protocol")),
                    "dead-letters --provider (64 characters) -X KEY=VALUE parse");
        } catch (Options.UsageError e) {
            check(out, false, "dead-letters --provider (64 characters) -X KEY=VALUE parse: " + e.getMessage());
        }
        try {
            Options.parse(new String[] {"dead-letters", "--provider", "telco-a", "-X", "group.id=other"});
            check(out, false, "dead-letters -X group.id=... is refused");
        } catch (Options.UsageError e) {
            check(out, e.getMessage().startsWith("-X group.id is fixed"), "dead-letters -X group.id=... is refused");
        }
    }

    private static void deadLetters(Path schemas, PrintStream out) {
        Schema schema;
        Schema ping;
        try {
            schema = DeadLetters.schema(schemas);
            ping = Main.parseSchema(schemas, Feed.TELECOM, Main.schemaText(schemas, Feed.TELECOM));
        } catch (KitException e) {
            check(out, false, "DeadLetter: " + e.getMessage());
            return;
        }
        DeadLetters.Decoder decoder = new DeadLetters.Decoder(schema, null);
        String header = Text.hex(decoder.header());
        check(out, header.equals(EXPECTED_DEAD_LETTER_HEADER), "DeadLetter single-object header " + header
                + (header.equals(EXPECTED_DEAD_LETTER_HEADER) ? " (" + DeadLetters.SCHEMA_FILE + ")"
                        : ", expected " + EXPECTED_DEAD_LETTER_HEADER));
        // The payload: a LocationPing as a provider sent it (a 16-byte subject of 7s).
        byte[] payload = new Framing.SingleObject(ping).frame(sample(Feed.TELECOM, ping));
        GenericRecord letter = new GenericData.Record(schema);
        letter.put("topic", "feeds.telecom.location");
        letter.put("partition", 3);
        letter.put("offset", 42L);
        letter.put("reason_code", "timestamp_in_future");
        letter.put("detail", "observed_at is more than 24 h after the\nprocessor's clock");
        letter.put("payload", java.nio.ByteBuffer.wrap(payload));
        letter.put("dead_lettered_at", 1_588_424_700_123L);
        byte[] frame = new Framing.SingleObject(schema).frame(letter);
        DeadLetters.Letter l;
        try {
            l = decoder.decode(frame);
        } catch (DeadLetters.Undecodable | KitException e) {
            check(out, false, "a single-object DeadLetter frame decodes (" + e.getMessage() + ")");
            return;
        }
        check(out, l.topic.equals("feeds.telecom.location") && l.partition == 3 && l.offset == 42L
                        && l.reasonCode.equals("timestamp_in_future")
                        && l.detail.equals("observed_at is more than 24 h after the\nprocessor's clock")
                        && Arrays.equals(l.payload, payload) && l.deadLetteredAt == 1_588_424_700_123L,
                "a single-object DeadLetter frame decodes to its fields (topic, partition, offset, reason_code, detail,"
                        + " payload, dead_lettered_at)");
        String text = l.text();
        String wantText = "feeds.telecom.location/3@42 timestamp_in_future: observed_at is more than 24 h after the"
                + "\\u000aprocessor's clock (dead-lettered 2020-05-02T13:05:00.123Z, " + payload.length + " bytes)";
        check(out, text.equals(wantText), "text line: " + text + (text.equals(wantText) ? "" : ", expected " + wantText));
        check(out, !text.contains(Text.hex(Arrays.copyOfRange(payload, 10, 26))) && !text.contains("0707070707"),
                "the text line shows the payload's length, none of its bytes");
        String json = l.json();
        String wantJson = "{\"topic\":\"feeds.telecom.location\",\"partition\":3,\"offset\":42,"
                + "\"reason_code\":\"timestamp_in_future\",\"detail\":\"observed_at is more than 24 h after the\\n"
                + "processor's clock\",\"dead_lettered_at\":\"2020-05-02T13:05:00.123Z\",\"payload_hex\":\""
                + Text.hex(payload) + "\"}";
        check(out, json.equals(wantJson), "JSON line with every field and payload_hex"
                + (json.equals(wantJson) ? "" : ": got " + json));
        Object parsed = Json.parse(json);
        check(out, parsed instanceof Map && ((Map<?, ?>) parsed).size() == 7, "the JSON line parses back (7 keys)");
        // What must be reported as undecodable, not thrown.
        byte[] confluent = new Framing.Confluent(schema, 7).frame(letter);
        byte[] other = new Framing.SingleObject(ping).frame(sample(Feed.TELECOM, ping));
        byte[] longer = Arrays.copyOf(frame, frame.length + 1);
        Object[][] bad = {
            {confluent, "a Confluent frame without --registry", "--registry"},
            {other, "a single-object frame of another schema (LocationPing)", "fingerprint"},
            {"not avro".getBytes(StandardCharsets.UTF_8), "a value in neither framing", "neither single-object"},
            {Arrays.copyOf(frame, frame.length - 3), "a truncated frame", "does not read"},
            {longer, "a frame with a trailing byte", "more bytes"},
            {new byte[0], "an empty value", "empty"},
        };
        for (Object[] b : bad) {
            try {
                decoder.decode((byte[]) b[0]);
                check(out, false, b[1] + " is reported undecodable");
            } catch (DeadLetters.Undecodable e) {
                check(out, e.getMessage().contains((String) b[2]), b[1] + " is reported undecodable: " + e.getMessage());
            } catch (KitException | RuntimeException e) {
                check(out, false, b[1] + " is reported undecodable (got " + e.getClass().getSimpleName() + ")");
            }
        }
    }
}
