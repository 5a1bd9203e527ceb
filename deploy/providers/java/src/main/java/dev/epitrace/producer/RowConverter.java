package dev.epitrace.producer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;

/**
 * Turns one CSV row into a validated, pseudonymised Avro record — the same rules, in the same
 * order, with the same messages as the Rust reader ({@code crates/feeds/src/read.rs}), so that
 * the kit accepts exactly the rows {@code epitrace produce} accepts.
 *
 * <p>No message repeats a value of the row: it names the rule broken instead.
 */
final class RowConverter {
    /** A record ready to send: the Kafka key (the 16 pseudonym bytes) and the Avro value. */
    static final class Converted {
        final byte[] key;
        final GenericRecord value;

        Converted(byte[] key, GenericRecord value) {
            this.key = key;
            this.value = value;
        }
    }

    /** The simulator's providers, epitrace's default {@code feeds.providers}. */
    static final List<String> DEFAULT_PROVIDERS = List.of("telco-a", "telco-b", "telco-c", "card-a", "card-b");

    private static final String RAW_ID =
            "looks like a raw phone or card number; refused so that it never leaves this process";

    private final Feed feed;
    private final Schema schema;
    private final Pseudonymizer pseudonyms;
    private final List<String> providers;
    private final Long nowMs;
    /** For each of the feed's columns, its position in the file's header (-1: absent). */
    private final int[] index;
    private final int width;

    /**
     * @param header the file's header fields
     * @param providers accepted values of the provider/issuer column; empty accepts any identifier
     * @param nowMs timestamps more than a day after this are refused (null: no such check)
     */
    RowConverter(Feed feed, Schema schema, Pseudonymizer pseudonyms, List<String> providers, Long nowMs,
            String path, List<String> header) throws KitException {
        this.feed = feed;
        this.schema = schema;
        this.pseudonyms = pseudonyms;
        this.providers = providers;
        this.nowMs = nowMs;
        this.index = headerIndex(feed, path, header);
        this.width = header.size();
    }

    /**
     * Checks the header (columns in any order; every required one present; no unknown one) and
     * maps the feed's columns to positions. The error quotes only what looks like a column name:
     * a file without its header has a row of data — personal data — in its place.
     */
    static int[] headerIndex(Feed feed, String path, List<String> header) throws KitException {
        List<String> found = new ArrayList<>(header.size());
        for (String h : header) {
            found.add(Text.trim(h));
        }
        boolean unknown = found.stream().anyMatch(h -> feed.indexOf(h) < 0);
        boolean missing = feed.columns.stream().anyMatch(c -> !c.optional && !found.contains(c.name));
        if (unknown || missing) {
            List<String> shown = new ArrayList<>();
            for (String h : found) {
                shown.add(nameLike(h) ? h : "<not a column name>");
            }
            throw new KitException(path + ": header \"" + String.join(",", shown) + "\" is not the "
                    + feed.cliName + " header \"" + feed.columnNames() + "\"");
        }
        int[] index = new int[feed.columns.size()];
        for (int i = 0; i < index.length; i++) {
            index[i] = found.indexOf(feed.columns.get(i).name);
        }
        return index;
    }

    private static boolean nameLike(String h) {
        byte[] b = h.getBytes(StandardCharsets.UTF_8);
        if (b.length == 0 || b.length > 32) {
            return false;
        }
        boolean lower = false;
        for (byte x : b) {
            if (x >= 'a' && x <= 'z') {
                lower = true;
            } else if (!(x >= '0' && x <= '9') && x != '_') {
                return false;
            }
        }
        return lower;
    }

    /** Converts one record of the file, or says why it is refused. */
    Converted convert(CsvReader.Record rec) throws RowError {
        Row row = new Row(rec);
        GenericRecord r = new GenericData.Record(schema);
        byte[] key;
        switch (feed) {
            case TELECOM: {
                key = row.subject("msisdn", Pseudonymizer.Kind.MSISDN);
                r.put("subject", new GenericData.Fixed(schema.getField("subject").schema(), key));
                r.put("provider", row.provider("provider"));
                r.put("observed_at", row.time("observed_at"));
                double[] pos = row.position();
                r.put("lat", pos[0]);
                r.put("lng", pos[1]);
                r.put("accuracy_m", row.accuracy("accuracy_m"));
                r.put("source", row.symbol("source", schema.getField("source").schema()));
                String site = row.opt("site_id");
                if (site != null) {
                    site = row.identifier("site_id", row.ident("site_id", site));
                }
                r.put("site_id", site);
                break;
            }
            case CARD: {
                key = row.subject("card_number", Pseudonymizer.Kind.CARD);
                r.put("subject", new GenericData.Fixed(schema.getField("subject").schema(), key));
                r.put("issuer", row.provider("issuer"));
                r.put("merchant_id", row.identifier("merchant_id", row.ident("merchant_id", row.get("merchant_id"))));
                r.put("mcc", row.mcc("mcc"));
                double[] pos = row.position();
                r.put("lat", pos[0]);
                r.put("lng", pos[1]);
                r.put("accuracy_m", row.accuracy("accuracy_m"));
                r.put("observed_at", row.time("observed_at"));
                break;
            }
            case CHECKIN: {
                key = row.subject("msisdn", Pseudonymizer.Kind.MSISDN);
                r.put("subject", new GenericData.Fixed(schema.getField("subject").schema(), key));
                r.put("venue_id", row.identifier("venue_id", row.ident("venue_id", row.get("venue_id"))));
                double[] pos = row.position();
                r.put("lat", pos[0]);
                r.put("lng", pos[1]);
                long in = row.time("checkin_at");
                r.put("observed_at", in);
                String out = row.opt("checkout_at");
                Long checkout = out == null ? null : row.time("checkout_at");
                r.put("checkout_at", checkout);
                // The record's own rules, then the future check (as the Rust model's validate()).
                if (checkout != null && checkout < in) {
                    throw new RowError(rec.line, "row", "checkout_at is before the time it must follow");
                }
                row.notFuture("observed_at", in);
                if (checkout != null) {
                    row.notFuture("checkout_at", checkout);
                }
                return new Converted(key, r);
            }
            default:
                throw new IllegalStateException();
        }
        Object observed = r.get("observed_at");
        row.notFuture("observed_at", (Long) observed);
        return new Converted(key, r);
    }

    /** One row's values by column, with the checks of each kind of column. */
    private final class Row {
        private final long line;
        private final List<String> values;

        Row(CsvReader.Record rec) throws RowError {
            this.line = rec.line;
            if (!rec.utf8()) {
                throw new RowError(line, "row", "not UTF-8");
            }
            if (rec.fields.size() != width) {
                throw new RowError(line, "row", rec.fields.size() + " fields, the header has " + width);
            }
            this.values = rec.fields;
        }

        /** The trimmed value; "missing" when a required column is empty. */
        String get(String name) throws RowError {
            int col = feed.indexOf(name);
            int at = index[col];
            String v = at < 0 ? "" : Text.trim(values.get(at));
            if (v.isEmpty() && !feed.columns.get(col).optional) {
                throw new RowError(line, name, "missing");
            }
            return v;
        }

        /** An optional column's value, null when empty. */
        String opt(String name) throws RowError {
            String v = get(name);
            return v.isEmpty() ? null : v;
        }

        byte[] subject(String name, Pseudonymizer.Kind kind) throws RowError {
            String raw = get(name);
            try {
                return pseudonyms.subject(kind, raw);
            } catch (Pseudonymizer.InvalidId e) {
                throw new RowError(line, name, e.getMessage());
            }
        }

        /** A free-text identifier column refuses what looks like a raw phone or card number. */
        String ident(String name, String v) throws RowError {
            if (looksLikeRawId(v)) {
                throw new RowError(line, name, RAW_ID);
            }
            return v;
        }

        /** epitrace's identifier rule: 1–64 bytes of [A-Za-z0-9._:-]. */
        String identifier(String name, String v) throws RowError {
            String reason = identifierRule(v);
            if (reason != null) {
                throw new RowError(line, name, "invalid identifier: " + reason);
            }
            return v;
        }

        String provider(String name) throws RowError {
            String v = ident(name, get(name));
            if (!providers.isEmpty() && !providers.contains(v)) {
                throw new RowError(line, name, "not one of the configured providers (feeds.providers)");
            }
            return identifier(name, v);
        }

        long time(String name) throws RowError {
            try {
                return Times.parse(get(name));
            } catch (Refusal e) {
                throw new RowError(line, name, e.getMessage());
            }
        }

        double number(String name) throws RowError {
            Double d = parseF64(get(name));
            if (d == null) {
                throw new RowError(line, name, "not a number");
            }
            return d;
        }

        double[] position() throws RowError {
            double lat = number("lat");
            double lng = number("lng");
            if (!(lat >= -90.0 && lat <= 90.0)) {
                throw new RowError(line, "lat/lng", "latitude is not a finite number in [-90, 90]");
            }
            if (!(lng >= -180.0 && lng <= 180.0)) {
                throw new RowError(line, "lat/lng", "longitude is not a finite number in [-180, 180]");
            }
            return new double[] {lat, lng};
        }

        double accuracy(String name) throws RowError {
            double a = number(name);
            if (!(a >= 0.0 && a <= 100_000.0)) {
                throw new RowError(line, name, "not a finite number in [0, 100000] m");
            }
            return a;
        }

        int mcc(String name) throws RowError {
            String v = get(name);
            if (!v.matches("[+-]?[0-9]+")) {
                throw new RowError(line, name, "not an integer");
            }
            long code;
            try {
                code = Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw new RowError(line, name, "not an integer");
            }
            if (code < 0 || code > 9999) {
                throw new RowError(line, name, "merchant category code outside 0..=9999");
            }
            return (int) code;
        }

        GenericData.EnumSymbol symbol(String name, Schema enumSchema) throws RowError {
            String v = Text.asciiUpper(get(name));
            if (!enumSchema.getEnumSymbols().contains(v)) {
                throw new RowError(line, name, "not one of: " + feed.columns.get(feed.indexOf(name)).doc);
            }
            return new GenericData.EnumSymbol(enumSchema, v);
        }

        /** Refuses a timestamp more than a day after this producer's clock (record field names). */
        void notFuture(String field, long ms) throws RowError {
            if (nowMs != null && ms > nowMs + Times.DAY_MS) {
                throw new RowError(line, "row", field + " is more than 24 h after this producer's clock");
            }
        }
    }

    /** Why a value breaks epitrace's identifier rule, or null when it does not. */
    static String identifierRule(String v) {
        byte[] b = v.getBytes(StandardCharsets.UTF_8);
        if (b.length == 0) {
            return "empty";
        }
        if (b.length > 64) {
            return "too long";
        }
        for (byte x : b) {
            boolean ok = (x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z') || (x >= '0' && x <= '9')
                    || x == '.' || x == '_' || x == ':' || x == '-';
            if (!ok) {
                return "characters outside [A-Za-z0-9._:-]";
            }
        }
        return null;
    }

    /**
     * A number as Rust's {@code f64::from_str} reads it (so both accept the same text): optional
     * sign, then {@code inf}, {@code infinity} or {@code nan} (any case), or digits with an
     * optional point and an optional exponent. Null when it is not one.
     */
    static Double parseF64(String s) {
        int i = 0;
        int n = s.length();
        boolean negative = false;
        if (i < n && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
            negative = s.charAt(i) == '-';
            i++;
        }
        String rest = s.substring(i);
        String lower = rest.toLowerCase(java.util.Locale.ROOT);
        if (rest.length() == lower.length()) {
            if (lower.equals("inf") || lower.equals("infinity")) {
                return negative ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
            }
            if (lower.equals("nan")) {
                return Double.NaN;
            }
        }
        int intDigits = 0;
        while (i < n && isDigit(s.charAt(i))) {
            i++;
            intDigits++;
        }
        int fracDigits = 0;
        if (i < n && s.charAt(i) == '.') {
            i++;
            while (i < n && isDigit(s.charAt(i))) {
                i++;
                fracDigits++;
            }
        }
        if (intDigits + fracDigits == 0) {
            return null;
        }
        if (i < n && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
            i++;
            if (i < n && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
                i++;
            }
            int expDigits = 0;
            while (i < n && isDigit(s.charAt(i))) {
                i++;
                expDigits++;
            }
            if (expDigits == 0) {
                return null;
            }
        }
        if (i != n) {
            return null;
        }
        // The text is plain decimal here; Java rounds it exactly as Rust does (correctly).
        return Double.parseDouble(s);
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    /**
     * Whether a free-text value looks like a raw phone or card number: once spaces, dashes, dots
     * and brackets are dropped, only digits (and a leading '+') remain, and they are a Korean
     * mobile number ({@code 01} then 8–9 digits, or {@code +82 1…}), or 13–19 digits passing the
     * Luhn check (a card). As {@code looks_like_raw_id} in {@code crates/feeds/src/read.rs}.
     */
    static boolean looksLikeRawId(String value) {
        String s = Text.trim(value);
        StringBuilder digits = new StringBuilder(s.length());
        int i = 0;
        for (int off = 0; off < s.length(); ) {
            int c = s.codePointAt(off);
            off += Character.charCount(c);
            if (c >= '0' && c <= '9') {
                digits.append((char) c);
            } else if (c == '+' && i == 0) {
                // a leading plus: dropped
            } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') {
                // a separator: dropped
            } else {
                return false;
            }
            i++;
        }
        String d = digits.toString();
        boolean mobile = (d.startsWith("01") && d.length() >= 10 && d.length() <= 11)
                || (d.startsWith("821") && d.length() >= 11 && d.length() <= 12);
        return mobile || (d.length() >= 13 && d.length() <= 19 && luhn(d));
    }

    static boolean luhn(String digits) {
        int sum = 0;
        for (int i = 0; i < digits.length(); i++) {
            int d = digits.charAt(digits.length() - 1 - i) - '0';
            if (i % 2 == 1) {
                d *= 2;
                if (d > 9) {
                    d -= 9;
                }
            }
            sum += d;
        }
        return sum % 10 == 0;
    }
}
