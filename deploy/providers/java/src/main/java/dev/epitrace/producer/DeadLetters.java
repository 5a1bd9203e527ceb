package dev.epitrace.producer;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.SchemaParseException;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * {@code producer.sh dead-letters --provider ID}: reads the provider's own dead-letter topic,
 * {@code pipeline.deadletter.<ID>}, from the beginning of every partition up to the end offsets
 * taken at start, and prints each {@code DeadLetter} (never its payload's bytes, in text: they are
 * the record as the provider sent it — personal data). Partitions are assigned, not subscribed;
 * no offset is committed: every run shows every dead letter the topic still retains.
 *
 * <p>Values are framed as epitrace writes them: Avro single-object encoding ({@code C3 01}, the
 * DeadLetter schema's fingerprint, the datum) or, when epitrace's operators chose
 * {@code output_framing = confluent}, Confluent framing ({@code 00}, the registry id, the datum;
 * the writer schema is fetched from {@code --registry} once per id).
 */
final class DeadLetters {
    private DeadLetters() {}

    static final String SCHEMA_FILE = "dead_letter.avsc";
    static final String RECORD = "epitrace.v1.DeadLetter";
    static final String TOPIC_PREFIX = "pipeline.deadletter.";
    static final String GROUP_PREFIX = "deadletters.";

    /** Consumer settings the kit fixes: the topic is only read, from the start, never committed. */
    static final Set<String> FIXED = Set.of(
            ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG,
            ConsumerConfig.GROUP_ID_CONFIG,
            ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG,
            ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG,
            ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
            ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG);

    static String topic(String provider) {
        return TOPIC_PREFIX + provider;
    }

    static String group(String provider) {
        return GROUP_PREFIX + provider;
    }

    /** One dead letter, decoded. */
    static final class Letter {
        final String topic;
        final int partition;
        final long offset;
        final String reasonCode;
        final String detail;
        final byte[] payload;
        final long deadLetteredAt;

        Letter(GenericRecord r) {
            this.topic = r.get("topic").toString();
            this.partition = (Integer) r.get("partition");
            this.offset = (Long) r.get("offset");
            this.reasonCode = r.get("reason_code").toString();
            this.detail = r.get("detail").toString();
            java.nio.ByteBuffer b = (java.nio.ByteBuffer) r.get("payload");
            byte[] p = new byte[b.remaining()];
            b.duplicate().get(p);
            this.payload = p;
            this.deadLetteredAt = (Long) r.get("dead_lettered_at");
        }

        /** {@code TOPIC/PARTITION@OFFSET REASON: DETAIL (dead-lettered TIME, N bytes)}: no payload byte. */
        String text() {
            return oneLine(topic) + "/" + partition + "@" + offset + " " + oneLine(reasonCode) + ": " + oneLine(detail)
                    + " (dead-lettered " + time(deadLetteredAt) + ", " + payload.length + " bytes)";
        }

        /** One JSON object, keys in the documented order. */
        String json() {
            return "{\"topic\":" + Json.quote(topic)
                    + ",\"partition\":" + partition
                    + ",\"offset\":" + offset
                    + ",\"reason_code\":" + Json.quote(reasonCode)
                    + ",\"detail\":" + Json.quote(detail)
                    + ",\"dead_lettered_at\":" + Json.quote(time(deadLetteredAt))
                    + ",\"payload_hex\":" + Json.quote(Text.hex(payload))
                    + "}";
        }
    }

    private static final DateTimeFormatter RFC3339_MS =
            DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    /** Epoch milliseconds as RFC 3339 in UTC, to the millisecond: 2020-05-02T13:05:00.000Z. */
    static String time(long ms) {
        return RFC3339_MS.format(Instant.ofEpochMilli(ms));
    }

    /** Text on one line: control characters as \\uXXXX (a detail never spans lines of output). */
    static String oneLine(String s) {
        StringBuilder b = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u2029') {
                if (b == null) {
                    b = new StringBuilder(s.length() + 16).append(s, 0, i);
                }
                b.append(String.format("\\u%04x", (int) c));
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? s : b.toString();
    }

    /** Why a value is not a dead letter this reader can decode. */
    static final class Undecodable extends Exception {
        private static final long serialVersionUID = 1L;

        Undecodable(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * Decodes DeadLetter values in either framing. The reader schema is the schemas folder's
     * {@code dead_letter.avsc}; a Confluent frame's writer schema comes from the registry (by id,
     * cached, failures too) and is resolved into it.
     */
    static final class Decoder {
        private final Schema schema;
        private final long fingerprint;
        private final String registry;
        private final Map<Integer, Object> writers = new HashMap<>();
        private final GenericDatumReader<GenericRecord> singleObject;
        private final Map<Integer, GenericDatumReader<GenericRecord>> confluent = new HashMap<>();
        private HttpClient http;
        private BinaryDecoder decoder;

        /** @param registry the Confluent-compatible registry's base URL, or null (none) */
        Decoder(Schema schema, String registry) {
            this.schema = schema;
            this.fingerprint = SchemaNormalization.parsingFingerprint64(schema);
            this.registry = registry == null || registry.isEmpty() ? null
                    : registry.endsWith("/") ? registry.substring(0, registry.length() - 1) : registry;
            this.singleObject = new GenericDatumReader<>(schema, schema, GenericData.get());
        }

        /** The 10 bytes every single-object frame of the DeadLetter schema opens with. */
        byte[] header() {
            return Framing.SingleObject.header(schema);
        }

        Letter decode(byte[] value) throws Undecodable, KitException {
            if (value == null || value.length == 0) {
                throw new Undecodable("empty value");
            }
            if (value.length >= 2 && (value[0] & 0xff) == 0xC3 && value[1] == 0x01) {
                if (value.length < 10) {
                    throw new Undecodable("single-object frame shorter than its 10-byte header");
                }
                long fp = 0;
                for (int k = 0; k < 8; k++) {
                    fp |= (value[2 + k] & 0xffL) << (8 * k);
                }
                if (fp != fingerprint) {
                    throw new Undecodable("single-object frame of another schema (fingerprint "
                            + Text.hex(Arrays.copyOfRange(value, 2, 10)) + ", not the DeadLetter schema's "
                            + Text.hex(Arrays.copyOfRange(header(), 2, 10)) + " from " + SCHEMA_FILE
                            + "): check that --schemas holds epitrace's current schemas");
                }
                return datum(singleObject, value, 10);
            }
            if (value[0] == 0) {
                if (value.length < 5) {
                    throw new Undecodable("Confluent frame shorter than its 5-byte header");
                }
                int id = ((value[1] & 0xff) << 24) | ((value[2] & 0xff) << 16) | ((value[3] & 0xff) << 8) | (value[4] & 0xff);
                if (registry == null) {
                    throw new Undecodable("Confluent frame (schema id " + Integer.toUnsignedString(id)
                            + ") and no --registry (or EPITRACE_KAFKA_REGISTRY_URL) to fetch its schema from");
                }
                return datum(confluentReader(id), value, 5);
            }
            throw new Undecodable("neither single-object (C3 01) nor Confluent (00) framing (first byte "
                    + String.format("%02x", value[0] & 0xff) + ")");
        }

        private Letter datum(GenericDatumReader<GenericRecord> reader, byte[] value, int from) throws Undecodable {
            decoder = DecoderFactory.get().binaryDecoder(value, from, value.length - from, decoder);
            GenericRecord r;
            try {
                r = reader.read(null, decoder);
                if (!decoder.isEnd()) {
                    throw new Undecodable("the datum is followed by more bytes than the DeadLetter record holds");
                }
            } catch (IOException | AvroRuntimeException | ClassCastException | IndexOutOfBoundsException
                    | NegativeArraySizeException e) {
                throw new Undecodable("the datum does not read as a DeadLetter (" + e.getClass().getSimpleName() + ")");
            }
            try {
                return new Letter(r);
            } catch (RuntimeException e) {
                throw new Undecodable("the datum does not read as a DeadLetter (" + e.getClass().getSimpleName() + ")");
            }
        }

        /** The reader for a registry id: its writer schema resolved into the DeadLetter schema. */
        private GenericDatumReader<GenericRecord> confluentReader(int id) throws Undecodable, KitException {
            GenericDatumReader<GenericRecord> reader = confluent.get(id);
            if (reader != null) {
                return reader;
            }
            Object w = writers.get(id);
            if (w == null) {
                try {
                    w = fetch(id);
                } catch (Undecodable e) {
                    w = e.getMessage();
                }
                writers.put(id, w);
            }
            if (w instanceof String) {
                throw new Undecodable((String) w);
            }
            Schema writer = (Schema) w;
            reader = new GenericDatumReader<>(writer, schema, GenericData.get());
            confluent.put(id, reader);
            return reader;
        }

        /**
         * The writer schema of registry id {@code id}: GET {@code {registry}/schemas/ids/{id}}. An
         * id the registry lacks, or a schema that is not a DeadLetter, makes the record
         * undecodable; a registry that does not answer stops the run.
         */
        private Schema fetch(int id) throws Undecodable, KitException {
            String idText = Integer.toUnsignedString(id);
            URI uri;
            try {
                uri = URI.create(registry + "/schemas/ids/" + idText);
            } catch (IllegalArgumentException e) {
                throw new KitException("--registry " + registry + " is not a URL");
            }
            if (uri.getScheme() == null || !(uri.getScheme().equals("http") || uri.getScheme().equals("https"))) {
                throw new KitException("--registry must start with http:// or https://");
            }
            if (http == null) {
                http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            }
            HttpRequest req = HttpRequest.newBuilder(uri)
                    .timeout(Duration.ofSeconds(15))
                    .header("Accept", "application/vnd.schemaregistry.v1+json")
                    .GET()
                    .build();
            HttpResponse<String> resp;
            try {
                resp = http.send(req, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            } catch (HttpTimeoutException e) {
                throw new KitException("the Schema Registry at " + registry + " did not answer within 15 s");
            } catch (ConnectException e) {
                throw new KitException("no Schema Registry answered at " + registry
                        + " (connection refused): start it, or fix --registry");
            } catch (IOException e) {
                throw new KitException("the Schema Registry at " + registry + " could not be asked: "
                        + e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage()));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new KitException("interrupted while asking the Schema Registry");
            }
            Object body = null;
            try {
                body = Json.parse(resp.body());
            } catch (IllegalArgumentException e) {
                // not JSON: reported below
            }
            if (resp.statusCode() == 404) {
                throw new Undecodable("Confluent frame of schema id " + idText + ", which the Schema Registry at "
                        + registry + " does not have (HTTP 404): is --registry epitrace's registry?");
            }
            if (resp.statusCode() / 100 != 2) {
                String message = body instanceof Map && ((Map<?, ?>) body).get("message") instanceof String
                        ? (String) ((Map<?, ?>) body).get("message") : "no message";
                throw new KitException("the Schema Registry at " + registry + " answered HTTP " + resp.statusCode()
                        + " for schema id " + idText + ": " + message);
            }
            Object text = body instanceof Map ? ((Map<?, ?>) body).get("schema") : null;
            if (!(text instanceof String)) {
                throw new KitException("the Schema Registry at " + registry + " answered without a schema for id " + idText);
            }
            Schema writer;
            try {
                writer = new Schema.Parser().parse((String) text);
            } catch (SchemaParseException e) {
                throw new Undecodable("Confluent frame of schema id " + idText + ", whose schema in the registry is not"
                        + " a valid Avro schema");
            }
            if (writer.getType() != Schema.Type.RECORD || !writer.getFullName().equals(RECORD)) {
                throw new Undecodable("Confluent frame of schema id " + idText + ", which is "
                        + (writer.getType() == Schema.Type.RECORD ? writer.getFullName() : "a " + writer.getType())
                        + " in the registry, not " + RECORD);
            }
            return writer;
        }
    }

    /** The DeadLetter schema of the schemas folder. */
    static Schema schema(Path schemas) throws KitException {
        String text = Main.schemaText(schemas, SCHEMA_FILE);
        Schema schema;
        try {
            schema = new Schema.Parser().parse(text);
        } catch (SchemaParseException e) {
            throw new KitException("schema " + schemas.resolve(SCHEMA_FILE) + " is not a valid Avro schema: " + e.getMessage());
        }
        if (!schema.getFullName().equals(RECORD)) {
            throw new KitException("schema " + schemas.resolve(SCHEMA_FILE) + " is " + schema.getFullName() + ", not " + RECORD);
        }
        return schema;
    }

    /**
     * The consumer's properties: {@code --kafka-config} (a producer's file may be shared: its
     * producer-only settings are left out), then {@code -X}, then what the kit fixes.
     */
    static Properties consumerConfig(Options o) throws KitException {
        Properties p = new Properties();
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "epitrace-java-dead-letters-" + o.provider);
        // epitrace writes its outputs in transactions: only committed dead letters, once each.
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "2000");
        if (o.kafkaConfig != null) {
            Properties extra = new Properties();
            try (InputStream in = Files.newInputStream(o.kafkaConfig)) {
                extra.load(in);
            } catch (IOException e) {
                throw new KitException("--kafka-config " + o.kafkaConfig + ": cannot read it (" + e.getClass().getSimpleName() + ")");
            }
            Set<String> consumer = ConsumerConfig.configNames();
            Set<String> producerOnly = new HashSet<>(ProducerConfig.configNames());
            producerOnly.removeAll(consumer);
            for (String k : extra.stringPropertyNames()) {
                if (producerOnly.contains(k)) {
                    continue; // e.g. linger.ms, compression.type: the producer's
                }
                if (FIXED.contains(k)) {
                    throw new KitException("--kafka-config " + o.kafkaConfig + " sets " + k
                            + ", which this kit fixes for reading dead letters; remove it (use --brokers for the brokers)");
                }
                p.put(k, extra.getProperty(k));
            }
        }
        p.putAll(o.kafkaOptions);
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.brokers);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group(o.provider));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        long ms = o.timeoutS * 1000L;
        p.putIfAbsent(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Long.toString(ms));
        p.putIfAbsent(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, Long.toString(Math.min(ms, 30_000L)));
        return p;
    }

    private static String grant(String topic, String group) {
        return "ask the health authority for your dead-letter grant: READ on topic " + topic
                + " and READ on consumer group " + group + " (both literal)";
    }

    static int run(Options o, Path schemas) throws KitException {
        String topic = topic(o.provider);
        String group = group(o.provider);
        Decoder decoder = new Decoder(schema(schemas), o.registry);
        Properties config = consumerConfig(o);
        BrokerCheck.reachable(o.brokers);
        long deadline = System.nanoTime() + o.timeoutS * 1_000_000_000L;
        PrintStream out = Main.OUT;
        PrintStream err = Main.ERR;
        long letters = 0;
        long undecodable = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            List<PartitionInfo> infos;
            try {
                infos = consumer.partitionsFor(topic, Duration.ofSeconds(o.timeoutS));
            } catch (org.apache.kafka.common.errors.TimeoutException e) {
                throw new KitException("the brokers at " + o.brokers + " did not describe topic " + topic + " within "
                        + o.timeoutS + " s (check --kafka-config / -X: security.protocol, SASL and TLS settings)");
            }
            if (infos == null || infos.isEmpty()) {
                throw new KitException("topic " + topic + " does not exist on " + o.brokers + " (or you may not see it): "
                        + grant(topic, group) + "; the authority creates the topic when it configures your provider id");
            }
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo pi : infos) {
                partitions.add(new TopicPartition(topic, pi.partition()));
            }
            partitions.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, Duration.ofSeconds(o.timeoutS));
            Set<TopicPartition> left = new HashSet<>();
            for (TopicPartition tp : partitions) {
                if (consumer.position(tp, Duration.ofSeconds(o.timeoutS)) < end.get(tp)) {
                    left.add(tp);
                }
            }
            consumer.pause(difference(partitions, left));
            while (!left.isEmpty()) {
                long remaining = deadline - System.nanoTime();
                if (remaining <= 0) {
                    throw new KitException("timed out after " + o.timeoutS + " s with " + left.size() + " partition(s) of "
                            + topic + " not read to their end (" + (letters + undecodable) + " records read): raise"
                            + " --timeout-s, or check the brokers");
                }
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(Math.min(remaining / 1_000_000L, 500L)));
                for (ConsumerRecord<byte[], byte[]> rec : batch) {
                    TopicPartition tp = new TopicPartition(rec.topic(), rec.partition());
                    if (!left.contains(tp) || rec.offset() >= end.get(tp)) {
                        continue; // written after the start: the next run shows it
                    }
                    try {
                        Letter l = decoder.decode(rec.value());
                        letters++;
                        out.println(o.json ? l.json() : l.text());
                    } catch (Undecodable e) {
                        undecodable++;
                        err.println("epitrace-producer: " + topic + " partition " + rec.partition() + " offset " + rec.offset()
                                + ": cannot decode this dead letter: " + e.getMessage());
                    }
                }
                List<TopicPartition> done = new ArrayList<>();
                for (TopicPartition tp : left) {
                    if (consumer.position(tp) >= end.get(tp)) {
                        done.add(tp);
                    }
                }
                if (!done.isEmpty()) {
                    left.removeAll(done);
                    consumer.pause(done);
                }
            }
        } catch (TopicAuthorizationException e) {
            throw new KitException("not authorised to read topic " + topic + " on " + o.brokers + ": " + grant(topic, group));
        } catch (GroupAuthorizationException e) {
            throw new KitException("not authorised to use consumer group " + group + " on " + o.brokers + ": "
                    + grant(topic, group));
        } catch (AuthenticationException e) {
            throw new KitException("the brokers at " + o.brokers + " refused the login: " + e.getClass().getSimpleName()
                    + (e.getMessage() == null ? "" : ": " + e.getMessage()) + " (check --kafka-config / -X: SASL settings)");
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            throw new KitException("the brokers at " + o.brokers + " did not answer within " + o.timeoutS + " s reading "
                    + topic + " (raise --timeout-s, or check the brokers)");
        } catch (KafkaException e) {
            throw new KitException("Kafka client: " + e.getClass().getSimpleName()
                    + (e.getMessage() == null ? "" : ": " + e.getMessage()));
        }
        String summary = letters + " dead letters on " + topic + (undecodable > 0 ? ", " + undecodable + " undecodable" : "");
        (o.json ? err : out).println(summary);
        return 0;
    }

    private static List<TopicPartition> difference(List<TopicPartition> all, Set<TopicPartition> minus) {
        List<TopicPartition> d = new ArrayList<>();
        for (TopicPartition tp : all) {
            if (!minus.contains(tp)) {
                d.add(tp);
            }
        }
        return d;
    }
}
