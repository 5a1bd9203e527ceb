package dev.epitrace.producer;

/**
 * A row that cannot be published: its line, the column (or {@code row} for the row as a whole)
 * and the rule it breaks. Never carries a value of the row (a value in the wrong column may be
 * someone's phone number).
 */
final class RowError extends Exception {
    private static final long serialVersionUID = 1L;

    final long line;
    final String column;
    final String reason;

    RowError(long line, String column, String reason) {
        super(line + ": " + column + ": " + reason, null, false, false);
        this.line = line;
        this.column = column;
        this.reason = reason;
    }
}
