package dev.epitrace.producer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A small RFC 4180 CSV reader that splits records the way the Rust reader (the {@code csv}
 * crate, default settings) does:
 *
 * <ul>
 *   <li>fields separated by {@code ,}; records end at {@code \n}, {@code \r\n} or {@code \r};
 *   <li>a field may be quoted with {@code "}; inside, {@code ""} is one quote, and commas and
 *       line breaks are data; text after a closing quote is appended to the field;
 *   <li>empty lines are skipped (a line of spaces is a record of one field); a UTF-8 byte order
 *       mark at the very start is skipped;
 *   <li>fields are not trimmed here; every record is checked to be UTF-8 as a whole.
 * </ul>
 *
 * <p>Each record carries the line it starts on (1-based; the header is line 1; a quoted field with
 * line breaks makes the next record start further down).
 */
final class CsvReader implements AutoCloseable {
    /** One record: the line it starts on and its fields (null when the record is not UTF-8). */
    static final class Record {
        final long line;
        final List<String> fields;

        Record(long line, List<String> fields) {
            this.line = line;
            this.fields = fields;
        }

        boolean utf8() {
            return fields != null;
        }
    }

    private final InputStream in;
    private final byte[] buf = new byte[1 << 16];
    private int pos;
    private int len;
    private long line = 1;
    private boolean started;
    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);

    CsvReader(InputStream in) {
        this.in = in;
    }

    private int read() throws IOException {
        if (pos == len) {
            len = in.read(buf, 0, buf.length);
            pos = 0;
            if (len <= 0) {
                len = 0;
                return -1;
            }
        }
        return buf[pos++] & 0xff;
    }

    private int peek() throws IOException {
        int c = read();
        if (c >= 0) {
            pos--;
        }
        return c;
    }

    private static final int START_FIELD = 0;
    private static final int IN_FIELD = 1;
    private static final int IN_QUOTED = 2;
    private static final int AFTER_QUOTE = 3;

    /** The next record, or null at the end of the input. */
    Record next() throws IOException {
        if (!started) {
            started = true;
            // A UTF-8 byte order mark at the very start is not data.
            while (len < 3) {
                int n = in.read(buf, len, buf.length - len);
                if (n < 0) {
                    break;
                }
                len += n;
            }
            if (len >= 3 && (buf[0] & 0xff) == 0xef && (buf[1] & 0xff) == 0xbb && (buf[2] & 0xff) == 0xbf) {
                pos = 3;
            }
        }
        int c;
        // Skip empty lines.
        while (true) {
            c = read();
            if (c < 0) {
                return null;
            }
            if (c == '\n') {
                line++;
            } else if (c != '\r') {
                break;
            }
        }
        long start = line;
        List<byte[]> raw = new ArrayList<>();
        ByteArrayOutputStream field = new ByteArrayOutputStream(32);
        int state = START_FIELD;
        while (true) {
            if (c < 0) {
                raw.add(field.toByteArray());
                return record(start, raw);
            }
            boolean term = c == '\n' || c == '\r';
            switch (state) {
                case START_FIELD:
                case IN_FIELD:
                case AFTER_QUOTE:
                    if (state == START_FIELD && c == '"') {
                        state = IN_QUOTED;
                    } else if (state == AFTER_QUOTE && c == '"') {
                        field.write('"');
                        state = IN_QUOTED;
                    } else if (c == ',') {
                        raw.add(field.toByteArray());
                        field.reset();
                        state = START_FIELD;
                    } else if (term) {
                        raw.add(field.toByteArray());
                        if (c == '\n') {
                            line++;
                        } else if (peek() == '\n') {
                            read();
                            line++;
                        }
                        return record(start, raw);
                    } else {
                        field.write(c);
                        state = IN_FIELD;
                    }
                    break;
                case IN_QUOTED:
                    if (c == '"') {
                        state = AFTER_QUOTE;
                    } else {
                        if (c == '\n') {
                            line++;
                        }
                        field.write(c);
                    }
                    break;
                default:
                    throw new IllegalStateException();
            }
            c = read();
        }
    }

    private Record record(long start, List<byte[]> raw) {
        List<String> fields = new ArrayList<>(raw.size());
        for (byte[] f : raw) {
            try {
                fields.add(utf8.decode(ByteBuffer.wrap(f)).toString());
            } catch (CharacterCodingException e) {
                return new Record(start, null);
            }
        }
        return new Record(start, fields);
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
