package dev.epitrace.producer;

import java.util.List;

/**
 * The provider feeds this kit publishes: their CSV columns, topic, Avro record and schema file.
 * Column sets are epitrace's (README, "Provider files"; {@code crates/feeds/src/rows.rs}).
 */
enum Feed {
    TELECOM("telecom", "feeds.telecom.location", "LocationPing", "location_ping.avsc", List.of(
            col("msisdn", false, "raw phone number (pseudonymised by the producer)"),
            col("provider", false, "telecom id"),
            col("observed_at", false, Feed.TIME),
            col("lat", false, "degrees"),
            col("lng", false, "degrees"),
            col("accuracy_m", false, "radius in metres"),
            col("source", false, "CELL, GPS or WIFI"),
            col("site_id", true, "serving cell site, for CELL"))),
    CARD("card", "feeds.card.transaction", "CardTransaction", "card_transaction.avsc", List.of(
            col("card_number", false, "raw card number (pseudonymised by the producer)"),
            col("issuer", false, "card company id"),
            col("merchant_id", false, "merchant id"),
            col("mcc", false, "ISO 18245 merchant category code"),
            col("observed_at", false, Feed.TIME),
            col("lat", false, "merchant latitude"),
            col("lng", false, "merchant longitude"),
            col("accuracy_m", false, "geocoding radius in metres"))),
    CHECKIN("checkin", "feeds.venue.checkin", "VenueCheckin", "venue_checkin.avsc", List.of(
            col("msisdn", false, "raw phone number of the visitor (pseudonymised by the producer)"),
            col("venue_id", false, "venue id"),
            col("lat", false, "venue latitude"),
            col("lng", false, "venue longitude"),
            col("checkin_at", false, Feed.TIME),
            col("checkout_at", true, Feed.TIME)));

    static final String TIME = "RFC 3339 (2020-05-02T13:05:00Z or with an offset) or epoch milliseconds";

    /** A column: its name, whether it may be empty or absent, what it holds. */
    static final class Column {
        final String name;
        final boolean optional;
        final String doc;

        Column(String name, boolean optional, String doc) {
            this.name = name;
            this.optional = optional;
            this.doc = doc;
        }
    }

    private static Column col(String name, boolean optional, String doc) {
        return new Column(name, optional, doc);
    }

    final String cliName;
    final String topic;
    final String record;
    final String schemaFile;
    final List<Column> columns;

    Feed(String cliName, String topic, String record, String schemaFile, List<Column> columns) {
        this.cliName = cliName;
        this.topic = topic;
        this.record = record;
        this.schemaFile = schemaFile;
        this.columns = columns;
    }

    /** The Schema Registry subject of the topic's values (TopicNameStrategy). */
    String subject() {
        return topic + "-value";
    }

    int indexOf(String column) {
        for (int i = 0; i < columns.size(); i++) {
            if (columns.get(i).name.equals(column)) {
                return i;
            }
        }
        return -1;
    }

    String columnNames() {
        StringBuilder b = new StringBuilder();
        for (Column c : columns) {
            if (b.length() > 0) {
                b.append(',');
            }
            b.append(c.name);
        }
        return b.toString();
    }

    static Feed of(String name) {
        for (Feed f : values()) {
            if (f.cliName.equals(name)) {
                return f;
            }
        }
        return null;
    }
}
