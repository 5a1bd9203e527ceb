package dev.epitrace.producer;

/**
 * String helpers that behave exactly like the Rust reader's ({@code str::trim},
 * {@code char::is_whitespace}, {@code to_ascii_uppercase}), so that the kit accepts
 * and refuses the same values as {@code epitrace produce}.
 */
final class Text {
    private Text() {}

    /** Unicode White_Space, as Rust's {@code char::is_whitespace} (not Java's isWhitespace). */
    static boolean isWhiteSpace(int c) {
        return (c >= 0x09 && c <= 0x0d)
                || c == 0x20
                || c == 0x85
                || c == 0xa0
                || c == 0x1680
                || (c >= 0x2000 && c <= 0x200a)
                || c == 0x2028
                || c == 0x2029
                || c == 0x202f
                || c == 0x205f
                || c == 0x3000;
    }

    /** Rust's {@code str::trim}: leading and trailing Unicode White_Space removed. */
    static String trim(String s) {
        int start = 0;
        int end = s.length();
        while (start < end) {
            int c = s.codePointAt(start);
            if (!isWhiteSpace(c)) {
                break;
            }
            start += Character.charCount(c);
        }
        while (end > start) {
            int c = s.codePointBefore(end);
            if (!isWhiteSpace(c)) {
                break;
            }
            end -= Character.charCount(c);
        }
        return s.substring(start, end);
    }

    /** Rust's {@code to_ascii_uppercase}: a–z to A–Z, everything else unchanged. */
    static String asciiUpper(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            b.append(c >= 'a' && c <= 'z' ? (char) (c - 32) : c);
        }
        return b.toString();
    }

    /** Whether every char is an ASCII digit (and there is at least one). */
    static boolean allAsciiDigits(String s) {
        if (s.isEmpty()) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return false;
            }
        }
        return true;
    }

    /** Lower-case hex of bytes. */
    static String hex(byte[] bytes) {
        StringBuilder b = new StringBuilder(bytes.length * 2);
        for (byte x : bytes) {
            b.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
        }
        return b.toString();
    }

    /** Bytes of lower- or upper-case hex text (even length, hex digits only). */
    static byte[] unhex(String hex) {
        if (hex.length() % 2 != 0) {
            throw new IllegalArgumentException("odd number of hex digits");
        }
        byte[] out = new byte[hex.length() / 2];
        for (int i = 0; i < out.length; i++) {
            char h = hex.charAt(2 * i);
            char l = hex.charAt(2 * i + 1);
            if (!isAsciiHexDigit(h) || !isAsciiHexDigit(l)) {
                throw new IllegalArgumentException("not a hex digit");
            }
            int hi = Character.digit(h, 16);
            int lo = Character.digit(l, 16);
            out[i] = (byte) ((hi << 4) | lo);
        }
        return out;
    }

    static boolean isAsciiHexDigit(int c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
}
