package dev.epitrace.producer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/** The command line. */
final class Options {
    /** A command line that cannot run; the launcher exits 2. */
    static final class UsageError extends Exception {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message, null, false, false);
        }
    }

    Feed feed;
    Path input;
    Path key;
    String brokers;
    String framing = "single-object";
    String registry;
    Path schemas;
    List<String> providers = RowConverter.DEFAULT_PROVIDERS;
    double maxBadShare = 0.01;
    boolean quiet;
    Path kafkaConfig;
    boolean selfTest;
    Path vectors;
    boolean help;
    /** The provider id (--provider): the epitrace.provider header, the dead-letter topic. */
    String provider;
    /** Kafka client properties from -X KEY=VALUE, in order (a later one wins). */
    Map<String, String> kafkaOptions = new LinkedHashMap<>();
    /** The dead-letters subcommand (first argument {@code dead-letters}). */
    boolean deadLetters;
    boolean json;
    int timeoutS = 30;

    /** A provider id: what the epitrace.provider header may carry and a topic name may end with. */
    static final Pattern PROVIDER_ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    /** The first argument that runs the dead-letters reader instead of the producer. */
    static final String DEAD_LETTERS = "dead-letters";

    /** Flags of the producer only, and of the dead-letters reader only. */
    private static final Set<String> PRODUCER_ONLY = Set.of("--feed", "--input", "--key", "--framing", "--providers",
            "--max-bad-share", "--quiet", "--self-test", "selftest", "--vectors");
    private static final Set<String> DEAD_LETTERS_ONLY = Set.of("--json", "--timeout-s");

    static final String HELP = String.join("\n",
            "epitrace Java producer kit: publishes a provider's CSV file to epitrace's Kafka topic,",
            "pseudonymising raw phone and card numbers (HMAC-SHA-256 under the authority's key) before",
            "anything leaves this process, validating every row as `epitrace produce` does.",
            "",
            "Usage:",
            "  producer.sh --feed telecom|card|checkin --input FILE.csv --key KEYFILE [options]",
            "  producer.sh --self-test [--vectors FILE] [--schemas DIR]",
            "  producer.sh dead-letters --provider ID [--brokers LIST] [--registry URL] [--json] [options]",
            "",
            "Feed and files:",
            "  --feed NAME            telecom -> feeds.telecom.location (LocationPing),",
            "                         card    -> feeds.card.transaction (CardTransaction),",
            "                         checkin -> feeds.venue.checkin (VenueCheckin). Required.",
            "  --input FILE           the provider file: CSV with a header line; columns in any order,",
            "                         unknown columns refused (columns per feed: README.md). Required.",
            "  --key FILE             the authority's pseudonymisation key: hex text (64+ hex digits,",
            "                         whitespace ignored), i.e. 32+ bytes. Default: $EPITRACE_PSEUDONYM_KEY.",
            "  --schemas DIR          epitrace's schemas/ folder (the .avsc files). Default: ../../../schemas",
            "                         from this kit's folder (the repository's schemas/).",
            "",
            "Kafka:",
            "  --brokers LIST         bootstrap servers, host:port[,host:port...]. Default: $EPITRACE_BROKERS,",
            "                         else 127.0.0.1:9092.",
            "  --kafka-config FILE    extra Kafka producer properties (Java .properties), e.g.",
            "                         security.protocol=SASL_SSL, sasl.mechanism, sasl.jaas.config, ssl.*.",
            "                         acks, enable.idempotence, the serializers and the partitioner are fixed",
            "                         by this kit and may not be changed there.",
            "  -X KEY=VALUE           one more Kafka client property (repeatable; after --kafka-config, a later",
            "                         one wins), e.g. -X security.protocol=SASL_SSL. The same properties are",
            "                         fixed as in --kafka-config.",
            "  --provider ID          your provider id as the authority configured it (1-64 characters of",
            "                         A-Z a-z 0-9 . _ -): sent as the Kafka header epitrace.provider on every",
            "                         record, so that epitrace copies their dead letters to your topic",
            "                         pipeline.deadletter.ID. Default: the row's provider (telecom) or issuer",
            "                         (card) column; checkin: no header unless given (venue operators: pass",
            "                         it to get your dead letters).",
            "",
            "Framing of the values (see README.md, \"The two framings\"):",
            "  --framing F            single-object (default): Avro single-object encoding, C3 01 + the",
            "                         schema's 8-byte fingerprint + the datum; needs no registry.",
            "                         confluent: Schema Registry framing, 00 + the schema id (4 bytes,",
            "                         big-endian) + the datum; needs --registry.",
            "  --registry URL         Confluent-compatible Schema Registry, e.g.",
            "                         http://127.0.0.1:8081/apis/ccompat/v7 (Apicurio) or http://registry:8081.",
            "                         The id is looked up under <topic>-value. Default: $EPITRACE_KAFKA_REGISTRY_URL.",
            "",
            "Validation:",
            "  --providers LIST       accepted values of the provider (telecom) and issuer (card) columns,",
            "                         comma-separated; \"\" accepts any identifier. Default:",
            "                         telco-a,telco-b,telco-c,card-a,card-b (epitrace's feeds.providers default).",
            "  --max-bad-share X      exit 1 when more than this share of rows is bad (bad rows are always",
            "                         skipped and reported). In [0, 1]; default 0.01.",
            "  --quiet                don't report bad rows one by one, nor progress (the summary still counts).",
            "",
            "Self-test (no Kafka needed):",
            "  --self-test, selftest  check every vector of the pseudonym vectors file (pseudonyms and",
            "                         refusals with their exact text), the single-object header of each",
            "                         record, the CSV rules on sample rows, the epitrace.provider header",
            "                         and a DeadLetter frame decoded; exit 1 on any mismatch.",
            "  --vectors FILE         the vectors file. Default: ../pseudonym-vectors.json from this kit's folder.",
            "",
            "Dead letters (producer.sh dead-letters ...): reads your dead-letter topic pipeline.deadletter.ID",
            "from the beginning to its end when the command starts (every partition; consumer group",
            "deadletters.ID, no offsets committed), prints each dead letter, then exits.",
            "  --provider ID          your provider id (as above). Required. Needs the authority's grants:",
            "                         READ on topic pipeline.deadletter.ID and on group deadletters.ID.",
            "  --brokers, --kafka-config, -X   as above (Kafka consumer properties: SASL, TLS).",
            "  --registry URL         the Schema Registry, for dead letters in Confluent framing (the writer",
            "                         schema is fetched by id). Default: $EPITRACE_KAFKA_REGISTRY_URL.",
            "  --schemas DIR          the folder with dead_letter.avsc (as above).",
            "  --json                 one JSON object per dead letter on stdout: topic, partition, offset,",
            "                         reason_code, detail, dead_lettered_at (RFC 3339 UTC), payload_hex;",
            "                         the summary on stderr.",
            "  --timeout-s N          give up (exit 1) when the topic is not read to its end within N s.",
            "                         Default 30.",
            "  Output (text): TOPIC/PARTITION@OFFSET REASON: DETAIL (dead-lettered TIME, N bytes) per dead",
            "  letter (the payload's length only: it holds personal data), then: N dead letters on TOPIC",
            "  [, K undecodable]. A record that does not decode is reported on stderr and counted.",
            "",
            "  --help, -h             this text.",
            "",
            "Output: bad rows on stderr as FILE:LINE: column: reason (never a value of the row); last line",
            "on stdout: published N records to TOPIC, B bad rows skipped (framing F).",
            "Exit status: 0 done; 1 failed (bad-row share above --max-bad-share, a send failed, unusable",
            "file, key, schema, registry or broker; dead-letters: no such topic, access refused, timeout);",
            "2 bad command line.",
            "");

    static Options parse(String[] args) throws UsageError {
        Options o = new Options();
        String envKey = System.getenv("EPITRACE_PSEUDONYM_KEY");
        if (envKey != null && !envKey.isEmpty()) {
            o.key = Path.of(envKey);
        }
        String envBrokers = System.getenv("EPITRACE_BROKERS");
        o.brokers = envBrokers != null && !envBrokers.isEmpty() ? envBrokers : "127.0.0.1:9092";
        String envRegistry = System.getenv("EPITRACE_KAFKA_REGISTRY_URL");
        if (envRegistry != null && !envRegistry.isEmpty()) {
            o.registry = envRegistry;
        }
        int first = 0;
        if (args.length > 0 && args[0].equals(DEAD_LETTERS)) {
            o.deadLetters = true;
            first = 1;
        }
        for (int i = first; i < args.length; i++) {
            String a = args[i];
            String value = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                value = a.substring(eq + 1);
                a = a.substring(0, eq);
            }
            if (o.deadLetters && PRODUCER_ONLY.contains(a)) {
                throw new UsageError(a + " is not a flag of dead-letters (see --help)");
            }
            if (!o.deadLetters && DEAD_LETTERS_ONLY.contains(a)) {
                throw new UsageError(a + " is a flag of dead-letters: producer.sh dead-letters --provider ID " + a + " ...");
            }
            switch (a) {
                case "--help":
                case "-h":
                    o.help = true;
                    continue;
                case "--self-test":
                case "selftest":
                    o.selfTest = true;
                    continue;
                case "--quiet":
                    o.quiet = true;
                    continue;
                case "--json":
                    o.json = true;
                    continue;
                case "-X":
                    if (i + 1 >= args.length) {
                        throw new UsageError("-X needs KEY=VALUE, a Kafka client property (see --help)");
                    }
                    kafkaOption(o, args[++i]);
                    continue;
                default:
                    break;
            }
            if (a.startsWith("-X") && a.length() > 2) {
                kafkaOption(o, a.substring(2));
                continue;
            }
            if (a.equals(DEAD_LETTERS)) {
                throw new UsageError("dead-letters must be the first argument: producer.sh dead-letters --provider ID ...");
            }
            if (!a.startsWith("--")) {
                throw new UsageError("argument " + (i + 1) + " is not a flag (see --help)");
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new UsageError(a + " needs a value (see --help)");
                }
                value = args[++i];
            }
            switch (a) {
                case "--feed":
                    o.feed = Feed.of(value);
                    if (o.feed == null) {
                        throw new UsageError("--feed must be telecom, card or checkin");
                    }
                    break;
                case "--input":
                    o.input = Path.of(value);
                    break;
                case "--key":
                    o.key = Path.of(value);
                    break;
                case "--brokers":
                    o.brokers = value;
                    break;
                case "--framing":
                    if (!value.equals("single-object") && !value.equals("confluent")) {
                        throw new UsageError("--framing must be single-object or confluent");
                    }
                    o.framing = value;
                    break;
                case "--registry":
                    o.registry = value;
                    break;
                case "--schemas":
                    o.schemas = Path.of(value);
                    break;
                case "--providers":
                    List<String> list = new ArrayList<>();
                    for (String p : value.split(",")) {
                        if (!p.trim().isEmpty()) {
                            list.add(p.trim());
                        }
                    }
                    o.providers = List.copyOf(list);
                    break;
                case "--max-bad-share":
                    try {
                        o.maxBadShare = Double.parseDouble(value);
                    } catch (NumberFormatException e) {
                        throw new UsageError("--max-bad-share must be a number in [0, 1]");
                    }
                    if (!(o.maxBadShare >= 0.0 && o.maxBadShare <= 1.0)) {
                        throw new UsageError("--max-bad-share must be within [0, 1]");
                    }
                    break;
                case "--kafka-config":
                    o.kafkaConfig = Path.of(value);
                    break;
                case "--vectors":
                    o.vectors = Path.of(value);
                    break;
                case "--provider":
                    // Not echoed: a mistyped command line could put a value of the file there.
                    if (!PROVIDER_ID.matcher(value).matches()) {
                        throw new UsageError("--provider must be your provider id as the authority configured it:"
                                + " 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'");
                    }
                    o.provider = value;
                    break;
                case "--timeout-s":
                    try {
                        o.timeoutS = Integer.parseInt(value);
                    } catch (NumberFormatException e) {
                        throw new UsageError("--timeout-s must be a whole number of seconds, 1 to 86400");
                    }
                    if (o.timeoutS < 1 || o.timeoutS > 86_400) {
                        throw new UsageError("--timeout-s must be a whole number of seconds, 1 to 86400");
                    }
                    break;
                default:
                    throw new UsageError("unknown flag " + shown(a) + " (see --help)");
            }
        }
        if (o.help || o.selfTest) {
            return o;
        }
        if (o.deadLetters) {
            if (o.provider == null) {
                throw new UsageError("dead-letters needs --provider ID: your provider id, as the authority configured it"
                        + " (see --help)");
            }
            return o;
        }
        if (o.feed == null) {
            throw new UsageError("--feed is required: telecom, card or checkin (see --help)");
        }
        if (o.input == null) {
            throw new UsageError("--input is required: the provider's CSV file (see --help)");
        }
        if (o.key == null) {
            throw new UsageError("--key is required (or EPITRACE_PSEUDONYM_KEY): the authority's key file");
        }
        if (o.framing.equals("confluent") && (o.registry == null || o.registry.isEmpty())) {
            throw new UsageError("--framing confluent needs --registry URL (or EPITRACE_KAFKA_REGISTRY_URL)");
        }
        return o;
    }

    /**
     * One {@code -X KEY=VALUE}. The producer's and the reader's fixed properties are refused here
     * (a usage error); the value is never echoed (it may be a password).
     */
    private static void kafkaOption(Options o, String kv) throws UsageError {
        int eq = kv.indexOf('=');
        if (eq <= 0) {
            throw new UsageError("-X needs KEY=VALUE, a Kafka client property (see --help)");
        }
        String k = kv.substring(0, eq).trim();
        if (!k.matches("[A-Za-z0-9._-]{1,200}")) {
            throw new UsageError("-X: the property name is not a Kafka property name (see --help)");
        }
        Set<String> fixed = o.deadLetters ? DeadLetters.FIXED : Main.FIXED;
        if (fixed.contains(k)) {
            throw new UsageError("-X " + k + " is fixed by this kit (epitrace's contract); remove it"
                    + (k.equals("bootstrap.servers") ? " (use --brokers)" : ""));
        }
        o.kafkaOptions.put(k, kv.substring(eq + 1));
    }

    /** A flag as typed when it looks like one (a mistyped command line could hold a value). */
    private static String shown(String a) {
        return a.matches("--[a-z][a-z-]{0,30}") ? a : "(not shown: it does not look like a flag name)";
    }
}
