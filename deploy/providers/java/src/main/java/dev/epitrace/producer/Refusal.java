package dev.epitrace.producer;

/** Why a value is refused, without the value: the caller adds the line and the column. */
final class Refusal extends Exception {
    private static final long serialVersionUID = 1L;

    Refusal(String reason) {
        super(reason, null, false, false);
    }
}
