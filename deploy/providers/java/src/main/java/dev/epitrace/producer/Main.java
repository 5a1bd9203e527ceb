package dev.epitrace.producer;

import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParseException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The epitrace Java producer: one provider CSV file to its epitrace topic. See README.md and
 * {@code --help}.
 */
public final class Main {
    private Main() {}

    static final PrintStream OUT = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    static final PrintStream ERR = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);

    /** Producer settings the kit fixes: epitrace's contract (keys, partitions, delivery). */
    static final Set<String> FIXED = Set.of(
            ProducerConfig.ACKS_CONFIG,
            ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG,
            ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG,
            ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
            ProducerConfig.PARTITIONER_CLASS_CONFIG,
            ProducerConfig.PARTITIONER_IGNORE_KEYS_CONFIG,
            ProducerConfig.BOOTSTRAP_SERVERS_CONFIG,
            ProducerConfig.TRANSACTIONAL_ID_CONFIG);

    /**
     * The Kafka record header naming the provider on every feed record: epitrace copies the dead
     * letter of such a record to {@code pipeline.deadletter.<provider>}, for the provider to read.
     */
    static final String PROVIDER_HEADER = "epitrace.provider";

    public static void main(String[] args) {
        int code;
        try {
            code = run(args);
        } catch (Throwable t) {
            // Never print an unexpected exception's message: it could quote a value.
            StackTraceElement at = t.getStackTrace().length > 0 ? t.getStackTrace()[0] : null;
            ERR.println("epitrace-producer: internal error " + t.getClass().getName()
                    + (at == null ? "" : " at " + at) + " (message not shown: it could hold a value of the input)");
            code = 1;
        }
        OUT.flush();
        ERR.flush();
        System.exit(code);
    }

    static int run(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (Options.UsageError e) {
            ERR.println("epitrace-producer: " + e.getMessage());
            return 2;
        }
        if (o.help) {
            OUT.print(Options.HELP);
            return 0;
        }
        Path kit = kitDir();
        Path schemas = o.schemas != null ? o.schemas : kit.resolve("../../../schemas").normalize();
        if (o.selfTest) {
            Path vectors = o.vectors != null ? o.vectors : kit.resolve("../pseudonym-vectors.json").normalize();
            return SelfTest.run(vectors, schemas, OUT) ? 0 : 1;
        }
        try {
            if (o.deadLetters) {
                return DeadLetters.run(o, schemas);
            }
            return produce(o, schemas);
        } catch (KitException e) {
            ERR.println("epitrace-producer: " + e.getMessage());
            return 1;
        }
    }

    /**
     * This kit's folder (deploy/providers/java): the system property epitrace.kit.dir (set by
     * producer.sh), else two levels above the jar (target/epitrace-producer.jar).
     */
    static Path kitDir() {
        String prop = System.getProperty("epitrace.kit.dir");
        if (prop != null && !prop.isEmpty()) {
            return Path.of(prop).toAbsolutePath().normalize();
        }
        try {
            Path code = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path parent = code.getParent() == null ? null : code.getParent().getParent();
            if (parent != null) {
                return parent.toAbsolutePath().normalize();
            }
        } catch (URISyntaxException | RuntimeException e) {
            // fall through
        }
        return Path.of("").toAbsolutePath();
    }

    /** The schema of a feed, parsed from the exact file text (which the registry lookup sends). */
    static String schemaText(Path schemas, Feed feed) throws KitException {
        return schemaText(schemas, feed.schemaFile);
    }

    /** The exact text of one schema file of the schemas folder. */
    static String schemaText(Path schemas, String schemaFile) throws KitException {
        Path file = schemas.resolve(schemaFile);
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new KitException("schema " + file + " not found: point --schemas at epitrace's schemas/ folder");
        } catch (IOException e) {
            throw new KitException("schema " + file + ": cannot read it (" + e.getClass().getSimpleName() + ")");
        }
    }

    static Schema parseSchema(Path schemas, Feed feed, String text) throws KitException {
        Schema schema;
        try {
            schema = new Schema.Parser().parse(text);
        } catch (SchemaParseException e) {
            throw new KitException("schema " + schemas.resolve(feed.schemaFile) + " is not a valid Avro schema: " + e.getMessage());
        }
        if (!schema.getFullName().equals("epitrace.v1." + feed.record)) {
            throw new KitException("schema " + schemas.resolve(feed.schemaFile) + " is " + schema.getFullName()
                    + ", not epitrace.v1." + feed.record);
        }
        return schema;
    }

    private static int produce(Options o, Path schemas) throws KitException {
        Feed feed = o.feed;
        String name = o.input.toString();
        Pseudonymizer pseudonyms = new Pseudonymizer(Pseudonymizer.readKeyFile(o.key));
        String text = schemaText(schemas, feed);
        Schema schema = parseSchema(schemas, feed, text);
        Framing framing = o.framing.equals("confluent")
                ? new Framing.Confluent(schema, Framing.Confluent.lookUp(o.registry, feed.subject(), text))
                : new Framing.SingleObject(schema);

        InputStream in;
        try {
            in = new BufferedInputStream(Files.newInputStream(o.input), 1 << 16);
        } catch (NoSuchFileException e) {
            throw new KitException(name + ": no such file");
        } catch (IOException e) {
            throw new KitException(name + ": cannot read it (" + e.getClass().getSimpleName() + ")");
        }
        try (CsvReader csv = new CsvReader(in)) {
            CsvReader.Record header = csv.next();
            List<String> headerFields = header == null ? List.of() : header.fields;
            if (header != null && !header.utf8()) {
                throw new KitException(name + ": header \"<not UTF-8>\" is not the " + feed.cliName
                        + " header \"" + feed.columnNames() + "\"");
            }
            RowConverter converter = new RowConverter(feed, schema, pseudonyms, o.providers,
                    System.currentTimeMillis(), name, headerFields);
            Properties config = producerConfig(o);
            BrokerCheck.check(o.brokers, feed.topic, config);
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
                return publish(o, feed, framing, csv, converter, producer);
            } catch (KafkaException e) {
                throw new KitException("Kafka client: " + e.getClass().getSimpleName()
                        + (e.getMessage() == null ? "" : ": " + e.getMessage()));
            }
        } catch (IOException e) {
            throw new KitException(name + ": read failed (" + e.getClass().getSimpleName() + ")");
        }
    }

    static Properties producerConfig(Options o) throws KitException {
        Properties p = new Properties();
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "epitrace-java-producer-" + o.feed.cliName);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        if (o.kafkaConfig != null) {
            Properties extra = new Properties();
            try (InputStream in = Files.newInputStream(o.kafkaConfig)) {
                extra.load(in);
            } catch (IOException e) {
                throw new KitException("--kafka-config " + o.kafkaConfig + ": cannot read it (" + e.getClass().getSimpleName() + ")");
            }
            for (String k : extra.stringPropertyNames()) {
                if (FIXED.contains(k)) {
                    throw new KitException("--kafka-config " + o.kafkaConfig + " sets " + k
                            + ", which this kit fixes (epitrace's contract); remove it (use --brokers for the brokers)");
                }
                p.put(k, extra.getProperty(k));
            }
        }
        // -X KEY=VALUE, after the file (Options refused the fixed ones).
        p.putAll(o.kafkaOptions);
        // epitrace's contract: raw 16-byte keys, the default (murmur2) partitioner on the key,
        // the idempotent producer with acks from every in-sync replica.
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, o.brokers);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    private static int publish(Options o, Feed feed, Framing framing, CsvReader csv, RowConverter converter,
            KafkaProducer<byte[], byte[]> producer) throws IOException, KitException {
        String name = o.input.toString();
        // Fails fast (max.block.ms) if the topic's metadata cannot be had after the checks.
        List<PartitionInfo> partitions;
        try {
            partitions = producer.partitionsFor(feed.topic);
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            throw new KitException("no metadata for topic " + feed.topic + " from " + o.brokers
                    + " within 20 s: check the broker and that the topic exists (epitrace topics create)");
        }
        if (partitions == null || partitions.isEmpty()) {
            throw new KitException("topic " + feed.topic + " has no partitions on " + o.brokers);
        }
        long started = System.nanoTime();
        long lastProgress = started;
        long rows = 0;
        long bad = 0;
        Map<String, Long> badByColumn = new TreeMap<>();
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicReference<String> firstFailure = new AtomicReference<>();
        // The epitrace.provider header of each value it takes (a handful: one per provider).
        Map<String, List<Header>> headers = new HashMap<>();
        long withoutHeader = 0;
        CsvReader.Record rec;
        while ((rec = csv.next()) != null) {
            if (failed.get() > 0) {
                break; // a send failed: stop reading, report below
            }
            rows++;
            RowConverter.Converted c;
            try {
                c = converter.convert(rec);
            } catch (RowError e) {
                bad++;
                badByColumn.merge(e.column, 1L, Long::sum);
                if (!o.quiet) {
                    ERR.println(name + ":" + e.line + ": " + e.column + ": " + e.reason);
                }
                continue;
            }
            byte[] value;
            try {
                value = framing.frame(c.value);
            } catch (RuntimeException e) {
                // Validation ran first, so this is a bug; the exception's text could quote a value.
                throw new KitException(name + ":" + rec.line + ": could not encode the record ("
                        + e.getClass().getSimpleName() + ")");
            }
            String provider = providerHeader(o.provider, feed, c.value);
            List<Header> recordHeaders = provider == null ? List.of()
                    : headers.computeIfAbsent(provider, Main::providerHeaders);
            if (provider == null) {
                withoutHeader++;
            }
            producer.send(new ProducerRecord<>(feed.topic, null, c.key, value, recordHeaders), (meta, err) -> {
                if (err == null) {
                    acked.incrementAndGet();
                } else {
                    failed.incrementAndGet();
                    firstFailure.compareAndSet(null, err.getClass().getSimpleName()
                            + (err.getMessage() == null ? "" : ": " + err.getMessage()));
                }
            });
            long now = System.nanoTime();
            if (!o.quiet && now - lastProgress >= TimeUnit.SECONDS.toNanos(5)) {
                lastProgress = now;
                ERR.println(progress(name, rows, acked.get(), bad, now - started));
            }
        }
        producer.flush();
        producer.close();
        if (!o.quiet) {
            ERR.println(progress(name, rows, acked.get(), bad, System.nanoTime() - started));
        }
        for (Map.Entry<String, Long> e : badByColumn.entrySet()) {
            ERR.println("  bad " + e.getKey() + ": " + e.getValue());
        }
        if (withoutHeader > 0 && feed != Feed.CHECKIN) {
            // A provider/issuer value epitrace accepts (':' is allowed there) that cannot name a topic.
            ERR.println("epitrace-producer: " + withoutHeader + " record(s) sent without the " + PROVIDER_HEADER
                    + " header: their " + (feed == Feed.CARD ? "issuer" : "provider") + " is not a provider id"
                    + " ([A-Za-z0-9._-]{1,64}); pass --provider ID to have their dead letters on your topic");
        }
        OUT.println("published " + acked.get() + " records to " + feed.topic + ", " + bad + " bad rows skipped (framing "
                + framing.name() + ")");
        if (failed.get() > 0) {
            ERR.println("epitrace-producer: " + failed.get() + " record(s) were not acknowledged by Kafka (first: "
                    + firstFailure.get() + "); the run stopped at row " + rows + " of " + name
                    + "; fix the cause and publish the file again (epitrace counts an exact duplicate"
                    + " observation once).");
            return 1;
        }
        double share = rows == 0 ? 0.0 : (double) bad / rows;
        if (share > o.maxBadShare) {
            ERR.println(String.format(Locale.ROOT, "epitrace-producer: %s: %.3f%% of rows are bad, above --max-bad-share %.3f%%",
                    name, share * 100, o.maxBadShare * 100));
            return 1;
        }
        return 0;
    }

    /**
     * The value of the epitrace.provider header of one record: {@code --provider} when given, else
     * the record's provider (telecom) or issuer (card) when it is a provider id; null (no header)
     * for a check-in without {@code --provider}, or a value that cannot name a dead-letter topic.
     */
    static String providerHeader(String flag, Feed feed, org.apache.avro.generic.GenericRecord value) {
        if (flag != null) {
            return flag;
        }
        Object v;
        switch (feed) {
            case TELECOM:
                v = value.get("provider");
                break;
            case CARD:
                v = value.get("issuer");
                break;
            default:
                return null;
        }
        String s = v == null ? null : v.toString();
        return s != null && Options.PROVIDER_ID.matcher(s).matches() ? s : null;
    }

    private static List<Header> providerHeaders(String provider) {
        return List.of(new RecordHeader(PROVIDER_HEADER, provider.getBytes(StandardCharsets.UTF_8)));
    }

    private static String progress(String name, long rows, long published, long bad, long nanos) {
        double s = nanos / 1e9;
        return String.format(Locale.ROOT, "%s: %d rows, %d published, %d bad in %.1f s (%.0f records/s)",
                name, rows, published, bad, s, s > 0 ? published / s : 0.0);
    }

}
