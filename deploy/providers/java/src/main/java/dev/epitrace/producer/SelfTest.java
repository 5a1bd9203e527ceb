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
}
