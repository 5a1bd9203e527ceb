package dev.epitrace.producer;

/**
 * A fatal error of a run (unusable file, key, header, registry or broker). Its message is shown to
 * the user as it is, so it never carries a field value of a row.
 */
final class KitException extends Exception {
    private static final long serialVersionUID = 1L;

    KitException(String message) {
        super(message, null, false, false);
    }
}
