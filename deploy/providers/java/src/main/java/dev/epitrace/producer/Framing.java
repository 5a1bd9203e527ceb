package dev.epitrace.producer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * How a record's value goes on the wire. epitrace reads both framings on every input topic.
 *
 * <ul>
 *   <li>{@link SingleObject}: Avro's single-object encoding — {@code C3 01}, the 8-byte
 *       little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, the Avro
 *       binary datum. Needs no server: epitrace knows its schemas' fingerprints.
 *   <li>{@link Confluent}: Confluent Schema Registry framing — byte {@code 00}, the schema's
 *       registry id as 4 bytes big-endian, the Avro binary datum. The id is looked up once in
 *       the registry under the subject {@code <topic>-value}.
 * </ul>
 */
abstract class Framing {
    /** "single-object" or "confluent", as on the command line. */
    abstract String name();

    /** The frame of one record. */
    abstract byte[] frame(GenericRecord record);

    /** The bytes every frame starts with (the header before the datum). */
    abstract byte[] header();

    /** Avro single-object encoding (org.apache.avro.message.BinaryMessageEncoder). */
    static final class SingleObject extends Framing {
        private final BinaryMessageEncoder<GenericRecord> encoder;
        private final byte[] header;

        SingleObject(Schema schema) {
            this.encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
            this.header = header(schema);
        }

        /** {@code C3 01} and the schema's CRC-64-AVRO fingerprint, little-endian. */
        static byte[] header(Schema schema) {
            long fp = SchemaNormalization.parsingFingerprint64(schema);
            byte[] h = new byte[10];
            h[0] = (byte) 0xC3;
            h[1] = (byte) 0x01;
            for (int k = 0; k < 8; k++) {
                h[2 + k] = (byte) (fp >>> (8 * k));
            }
            return h;
        }

        @Override
        String name() {
            return "single-object";
        }

        @Override
        byte[] header() {
            return header.clone();
        }

        @Override
        byte[] frame(GenericRecord record) {
            ByteArrayOutputStream out = new ByteArrayOutputStream(128);
            try {
                encoder.encode(record, out);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return out.toByteArray();
        }
    }

    /** Confluent Schema Registry framing, written by hand (no Confluent serializer needed). */
    static final class Confluent extends Framing {
        private final GenericDatumWriter<GenericRecord> writer;
        private final int id;
        private BinaryEncoder encoder;

        Confluent(Schema schema, int id) {
            this.writer = new GenericDatumWriter<>(schema, GenericData.get());
            this.id = id;
        }

        @Override
        String name() {
            return "confluent";
        }

        int id() {
            return id;
        }

        @Override
        byte[] header() {
            return new byte[] {0, (byte) (id >>> 24), (byte) (id >>> 16), (byte) (id >>> 8), (byte) id};
        }

        @Override
        byte[] frame(GenericRecord record) {
            ByteArrayOutputStream out = new ByteArrayOutputStream(128);
            out.writeBytes(header());
            encoder = EncoderFactory.get().binaryEncoder(out, encoder);
            try {
                writer.write(record, encoder);
                encoder.flush();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return out.toByteArray();
        }

        /**
         * The registry id of {@code schemaText} under {@code subject}: POST
         * {@code {registry}/subjects/{subject}} with the exact schema text. A 404 means epitrace's
         * schemas are not registered there yet.
         */
        static int lookUp(String registry, String subject, String schemaText) throws KitException {
            String base = registry.endsWith("/") ? registry.substring(0, registry.length() - 1) : registry;
            URI uri;
            try {
                uri = URI.create(base + "/subjects/" + subject);
            } catch (IllegalArgumentException e) {
                throw new KitException("--registry " + registry + " is not a URL");
            }
            if (uri.getScheme() == null || !(uri.getScheme().equals("http") || uri.getScheme().equals("https"))) {
                throw new KitException("--registry must start with http:// or https://");
            }
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            HttpRequest req = HttpRequest.newBuilder(uri)
                    .timeout(Duration.ofSeconds(15))
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .header("Accept", "application/vnd.schemaregistry.v1+json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"schema\":" + Json.quote(schemaText) + "}",
                            StandardCharsets.UTF_8))
                    .build();
            HttpResponse<String> resp;
            try {
                resp = http.send(req, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            } catch (HttpTimeoutException e) {
                throw new KitException("the Schema Registry at " + base + " did not answer within 15 s");
            } catch (ConnectException e) {
                throw new KitException("no Schema Registry answered at " + base
                        + " (connection refused): start it, or fix --registry");
            } catch (IOException e) {
                throw new KitException("the Schema Registry at " + base + " could not be asked: "
                        + e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage()));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new KitException("interrupted while asking the Schema Registry");
            }
            Object body = null;
            try {
                body = Json.parse(resp.body());
            } catch (IllegalArgumentException e) {
                // not JSON: reported below by status
            }
            String message = body instanceof Map && ((Map<?, ?>) body).get("message") instanceof String
                    ? (String) ((Map<?, ?>) body).get("message") : "no message";
            if (resp.statusCode() == 404) {
                throw new KitException("the Schema Registry at " + base + " has no schema under " + subject
                        + " equal to the one in the schemas folder (HTTP 404: " + message + "); register epitrace's"
                        + " schemas first: epitrace schemas register --url " + base
                        + " (and check that --schemas points at the same schemas/ folder)");
            }
            if (resp.statusCode() / 100 != 2) {
                throw new KitException("the Schema Registry at " + base + " answered HTTP " + resp.statusCode()
                        + " looking up " + subject + ": " + message);
            }
            Object id = body instanceof Map ? ((Map<?, ?>) body).get("id") : null;
            if (!(id instanceof Long) || (Long) id < 0 || (Long) id > 0xffff_ffffL) {
                throw new KitException("the Schema Registry at " + base + " answered without a schema id for " + subject);
            }
            return (int) (long) (Long) id;
        }
    }
}
