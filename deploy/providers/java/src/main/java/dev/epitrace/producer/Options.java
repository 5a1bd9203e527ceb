package dev.epitrace.producer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

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

    static final String HELP = String.join("\n",
            "epitrace Java producer kit: publishes a provider's CSV file to epitrace's Kafka topic,",
            "pseudonymising raw phone and card numbers (HMAC-SHA-256 under the authority's key) before",
            "anything leaves this process, validating every row as `epitrace produce` does.",
            "",
            "Usage:",
            "  producer.sh --feed telecom|card|checkin --input FILE.csv --key KEYFILE [options]",
            "  producer.sh --self-test [--vectors FILE] [--schemas DIR]",
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
            "                         record, and the CSV rules on sample rows; exit 1 on any mismatch.",
            "  --vectors FILE         the vectors file. Default: ../pseudonym-vectors.json from this kit's folder.",
            "",
            "  --help, -h             this text.",
            "",
            "Output: bad rows on stderr as FILE:LINE: column: reason (never a value of the row); last line",
            "on stdout: published N records to TOPIC, B bad rows skipped (framing F).",
            "Exit status: 0 done; 1 failed (bad-row share above --max-bad-share, a send failed, unusable",
            "file, key, schema, registry or broker); 2 bad command line.",
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
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String value = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                value = a.substring(eq + 1);
                a = a.substring(0, eq);
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
                default:
                    break;
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
                default:
                    throw new UsageError("unknown flag " + shown(a) + " (see --help)");
            }
        }
        if (o.help || o.selfTest) {
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

    /** A flag as typed when it looks like one (a mistyped command line could hold a value). */
    private static String shown(String a) {
        return a.matches("--[a-z][a-z-]{0,30}") ? a : "(not shown: it does not look like a flag name)";
    }
}
