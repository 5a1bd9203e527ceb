package dev.epitrace.producer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Turns a raw phone or card number into epitrace's subject pseudonym:
 *
 * <pre>
 *   pseudonym = first 16 bytes of HMAC-SHA-256(key, domain || normalised id)
 *   domain    = "epitrace/v1/msisdn:" (phone numbers) or "epitrace/v1/card:" (card numbers)
 * </pre>
 *
 * <p>Normalisation (as {@code crates/feeds/src/pseudonym.rs} and
 * {@code deploy/providers/pseudonym-vectors.json}): trim; drop ' ', '-', '.', '(', ')'; keep
 * digits and, for phone numbers only, a leading '+'; anything else refuses the id; a phone number
 * has 6–15 digits, a card number 12–19. Error messages never repeat the id.
 */
final class Pseudonymizer {
    /** Shortest key accepted, in bytes. */
    static final int MIN_KEY_LEN = 32;

    /** What kind of raw id: part of the HMAC input, so equal digits of a phone and a card differ. */
    enum Kind {
        MSISDN("epitrace/v1/msisdn:", 6, 15),
        CARD("epitrace/v1/card:", 12, 19);

        final byte[] domain;
        final int minDigits;
        final int maxDigits;

        Kind(String domain, int minDigits, int maxDigits) {
            this.domain = domain.getBytes(StandardCharsets.US_ASCII);
            this.minDigits = minDigits;
            this.maxDigits = maxDigits;
        }

        /** "msisdn" or "card", as in the vectors file. */
        static Kind of(String name) {
            switch (name) {
                case "msisdn":
                    return MSISDN;
                case "card":
                    return CARD;
                default:
                    throw new IllegalArgumentException("unknown id kind " + name);
            }
        }
    }

    /** A refused raw id; the message names the rule broken, never the id. */
    static final class InvalidId extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidId(String reason) {
            super(reason, null, false, false);
        }
    }

    private final Mac mac;

    Pseudonymizer(byte[] key) {
        if (key.length < MIN_KEY_LEN) {
            throw new IllegalArgumentException(key.length + " bytes, at least " + MIN_KEY_LEN + " needed");
        }
        try {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 unavailable in this JVM", e);
        }
    }

    /**
     * Reads a key file: hex text (64+ hex digits, whitespace anywhere ignored), or else the file's
     * raw bytes (32+), as {@code epitrace produce} does. The message of a failure never shows the
     * key.
     */
    static byte[] readKeyFile(Path path) throws KitException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new KitException("key " + path + ": cannot read it (" + e.getClass().getSimpleName() + ")");
        }
        String text = new String(bytes, StandardCharsets.UTF_8);
        StringBuilder digits = new StringBuilder(text.length());
        text.codePoints().filter(c -> !Text.isWhiteSpace(c)).forEach(digits::appendCodePoint);
        String hex = digits.toString();
        byte[] key = bytes;
        if (!hex.isEmpty() && hex.length() % 2 == 0 && hex.chars().allMatch(Text::isAsciiHexDigit)) {
            key = Text.unhex(hex);
            Arrays.fill(bytes, (byte) 0);
        }
        if (key.length < MIN_KEY_LEN) {
            throw new KitException("key " + path + ": " + key.length + " bytes, at least " + MIN_KEY_LEN + " needed");
        }
        return key;
    }

    /** The normalised id, or the reason it is refused (without the id). */
    static String normalise(Kind kind, String raw) throws InvalidId {
        String s = Text.trim(raw);
        StringBuilder out = new StringBuilder(s.length());
        int i = 0;
        for (int off = 0; off < s.length(); ) {
            int c = s.codePointAt(off);
            off += Character.charCount(c);
            if (c >= '0' && c <= '9') {
                out.append((char) c);
            } else if (c == '+' && i == 0 && kind == Kind.MSISDN) {
                out.append('+');
            } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') {
                // a separator: dropped
            } else {
                throw new InvalidId("contains a character that is not a digit or separator");
            }
            i++;
        }
        int digits = out.length() - (out.length() > 0 && out.charAt(0) == '+' ? 1 : 0);
        if (digits < kind.minDigits || digits > kind.maxDigits) {
            throw new InvalidId(digits + " digits, expected " + kind.minDigits + "\u2013" + kind.maxDigits);
        }
        return out.toString();
    }

    /** The 16-byte pseudonym of a raw id. */
    byte[] subject(Kind kind, String raw) throws InvalidId {
        String id = normalise(kind, raw);
        mac.reset();
        mac.update(kind.domain);
        byte[] full = mac.doFinal(id.getBytes(StandardCharsets.US_ASCII));
        return Arrays.copyOf(full, 16);
    }
}
