package dev.epitrace.producer;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Reads a feed topic back and checks what the kit published — a verification tool for the kit's
 * own tests and for a provider who wants to see their records as epitrace reads them. Not part
 * of the producer jar; run it from the build's classes:
 *
 * <pre>
 *   CP=target/epitrace-producer.jar:target/test-classes
 *   # the topic's end offsets now (a mark before publishing):
 *   java -cp $CP dev.epitrace.producer.ReadBack offsets --brokers B --topic T > before.txt
 *   # after publishing: check every record from the mark on against the CSV file
 *   java -cp $CP dev.epitrace.producer.ReadBack check --brokers B --feed telecom --input telecom.csv \
 *        --key pseudonym.key --from before.txt --framing single-object --expect-header c301bcb5a9c1096d66c6
 *   java -cp $CP dev.epitrace.producer.ReadBack check ... --framing confluent --registry URL
 * </pre>
 *
 * <p>{@code check} verifies, independently of the producer's code: each key is 16 bytes and equals
 * HMAC-SHA-256(key, domain || the row's number) truncated; the partition is murmur2(key) mod the
 * partition count (Kafka's rule, computed here); each frame opens with the expected header (single
 * object) or {@code 00} + the id the registry lists as the subject's latest version (Confluent);
 * each record decodes with the schema and carries exactly the values of one row of the file
 * (matched as a multiset); {@code --expect-count N} the number of records. With
 * {@code --compare-from A --compare-to B} the same partitions' records between those marks (e.g.
 * what {@code epitrace produce} published from the same file) are compared datum for datum, in
 * partition order.
 */
public final class ReadBack {
    private ReadBack() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 1; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        if (args.length == 0) {
            System.err.println("usage: ReadBack offsets|check --brokers B ... (see the class comment)");
            System.exit(2);
        }
        switch (args[0]) {
            case "offsets":
                try (KafkaConsumer<byte[], byte[]> c = consumer(a.get("--brokers"))) {
                    System.out.println(format(endOffsets(c, a.get("--topic"))));
                }
                break;
            case "check":
                System.exit(check(a) ? 0 : 1);
                break;
            default:
                System.err.println("unknown command");
                System.exit(2);
        }
    }

    static KafkaConsumer<byte[], byte[]> consumer(String brokers) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        return new KafkaConsumer<>(p);
    }

    static Map<Integer, Long> endOffsets(KafkaConsumer<byte[], byte[]> c, String topic) {
        List<TopicPartition> tps = new ArrayList<>();
        for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(20))) {
            tps.add(new TopicPartition(topic, pi.partition()));
        }
        Map<Integer, Long> out = new TreeMap<>();
        c.endOffsets(tps, Duration.ofSeconds(20)).forEach((tp, off) -> out.put(tp.partition(), off));
        return out;
    }

    static String format(Map<Integer, Long> offsets) {
        StringBuilder b = new StringBuilder();
        offsets.forEach((p, o) -> b.append(b.length() == 0 ? "" : ",").append(p).append(':').append(o));
        return b.toString();
    }

    static Map<Integer, Long> readOffsets(String file) throws IOException {
        Map<Integer, Long> out = new TreeMap<>();
        String text = Files.readString(Path.of(file)).trim();
        if (!text.isEmpty()) {
            for (String part : text.split(",")) {
                String[] pv = part.split(":");
                out.put(Integer.parseInt(pv[0]), Long.parseLong(pv[1]));
            }
        }
        return out;
    }

    /** Every record of each partition from {@code from} (inclusive) to {@code to} (exclusive). */
    static Map<Integer, List<ConsumerRecord<byte[], byte[]>>> read(KafkaConsumer<byte[], byte[]> c, String topic,
            Map<Integer, Long> from, Map<Integer, Long> to) {
        Map<Integer, List<ConsumerRecord<byte[], byte[]>>> out = new TreeMap<>();
        List<TopicPartition> tps = new ArrayList<>();
        for (Integer p : to.keySet()) {
            tps.add(new TopicPartition(topic, p));
            out.put(p, new ArrayList<>());
        }
        c.assign(tps);
        for (TopicPartition tp : tps) {
            c.seek(tp, from.getOrDefault(tp.partition(), 0L));
        }
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline) {
            boolean done = true;
            for (TopicPartition tp : tps) {
                if (c.position(tp) < to.get(tp.partition())) {
                    done = false;
                }
            }
            if (done) {
                break;
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                if (r.offset() < to.get(r.partition())) {
                    out.get(r.partition()).add(r);
                }
            }
        }
        return out;
    }

    private static int failures;

    private static void report(boolean ok, String what) {
        if (!ok) {
            failures++;
        }
        System.out.println((ok ? "ok    " : "FAIL  ") + what);
    }

    static boolean check(Map<String, String> a) throws Exception {
        Feed feed = Feed.of(a.get("--feed"));
        String brokers = a.get("--brokers");
        String framing = a.getOrDefault("--framing", "single-object");
        Path schemas = Path.of(a.getOrDefault("--schemas", "../../../schemas"));
        String schemaText = Files.readString(schemas.resolve(feed.schemaFile));
        Schema schema = new Schema.Parser().parse(schemaText);
        byte[] hmacKey = key(Path.of(a.get("--key")));
        Map<String, Integer> expected = expectedRows(feed, Path.of(a.get("--input")), hmacKey);
        int expectedRows = expected.values().stream().mapToInt(Integer::intValue).sum();

        byte[] header;
        if (framing.equals("confluent")) {
            int id = latestId(a.get("--registry"), feed.topic + "-value");
            header = new byte[] {0, (byte) (id >>> 24), (byte) (id >>> 16), (byte) (id >>> 8), (byte) id};
            System.out.println("registry: " + feed.topic + "-value latest version has id " + id);
        } else {
            header = Text.unhex(a.get("--expect-header"));
        }

        try (KafkaConsumer<byte[], byte[]> c = consumer(brokers)) {
            Map<Integer, Long> end = endOffsets(c, feed.topic);
            int partitions = end.size();
            Map<Integer, Long> from = a.containsKey("--from") ? readOffsets(a.get("--from")) : new TreeMap<>();
            Map<Integer, List<ConsumerRecord<byte[], byte[]>>> records = read(c, feed.topic, from, end);
            long total = records.values().stream().mapToLong(List::size).sum();
            System.out.println("read " + total + " records of " + feed.topic + " (" + partitions + " partitions) after the mark; "
                    + expectedRows + " rows of the file parse independently");
            if (a.containsKey("--expect-count")) {
                report(total == Long.parseLong(a.get("--expect-count")), "record count " + total + " = " + a.get("--expect-count"));
            }
            long badKey = 0;
            long badPartition = 0;
            long badHeader = 0;
            long badDecode = 0;
            long badSubject = 0;
            long unmatched = 0;
            Map<String, Integer> remaining = new HashMap<>(expected);
            BinaryMessageDecoder<GenericRecord> so = new BinaryMessageDecoder<>(GenericData.get(), schema);
            GenericDatumReader<GenericRecord> plain = new GenericDatumReader<>(schema, schema, GenericData.get());
            for (Map.Entry<Integer, List<ConsumerRecord<byte[], byte[]>>> e : records.entrySet()) {
                for (ConsumerRecord<byte[], byte[]> r : e.getValue()) {
                    byte[] k = r.key();
                    if (k == null || k.length != 16) {
                        badKey++;
                        continue;
                    }
                    if (Utils.toPositive(Utils.murmur2(k)) % partitions != r.partition()) {
                        badPartition++;
                    }
                    byte[] v = r.value();
                    if (v.length < header.length || !Arrays.equals(Arrays.copyOf(v, header.length), header)) {
                        badHeader++;
                        continue;
                    }
                    GenericRecord rec;
                    try {
                        rec = framing.equals("confluent")
                                ? plain.read(null, DecoderFactory.get().binaryDecoder(v, 5, v.length - 5, null))
                                : so.decode(v);
                    } catch (IOException | RuntimeException ex) {
                        badDecode++;
                        continue;
                    }
                    byte[] subject = ((GenericData.Fixed) rec.get("subject")).bytes();
                    if (!Arrays.equals(subject, k)) {
                        badSubject++;
                    }
                    String canon = canonical(feed, rec);
                    Integer n = remaining.get(canon);
                    if (n == null || n == 0) {
                        unmatched++;
                    } else {
                        remaining.put(canon, n - 1);
                    }
                }
            }
            report(badKey == 0, "every key is 16 bytes (" + badKey + " not)");
            report(badPartition == 0, "every record is in partition murmur2(key) mod " + partitions + " (" + badPartition + " not)");
            report(badHeader == 0, "every frame opens with " + Text.hex(header) + " (" + badHeader + " not)");
            report(badDecode == 0, "every datum decodes with " + feed.schemaFile + " (" + badDecode + " not)");
            report(badSubject == 0, "every record's subject equals its key (" + badSubject + " not)");
            report(unmatched == 0, "every record carries the pseudonym and values of a row of the file (" + unmatched + " not)");

            if (a.containsKey("--compare-from")) {
                Map<Integer, Long> cfrom = readOffsets(a.get("--compare-from"));
                Map<Integer, Long> cto = readOffsets(a.get("--compare-to"));
                Map<Integer, List<ConsumerRecord<byte[], byte[]>>> other = read(c, feed.topic, cfrom, cto);
                long compared = 0;
                long different = 0;
                int otherHeader = 10; // epitrace writes single-object frames
                for (Map.Entry<Integer, List<ConsumerRecord<byte[], byte[]>>> e : records.entrySet()) {
                    List<ConsumerRecord<byte[], byte[]>> mine = e.getValue();
                    List<ConsumerRecord<byte[], byte[]>> theirs = other.getOrDefault(e.getKey(), List.of());
                    if (mine.size() != theirs.size()) {
                        different += Math.abs(mine.size() - theirs.size());
                    }
                    for (int i = 0; i < Math.min(mine.size(), theirs.size()); i++) {
                        compared++;
                        byte[] m = mine.get(i).value();
                        byte[] t = theirs.get(i).value();
                        boolean same = Arrays.equals(mine.get(i).key(), theirs.get(i).key())
                                && Arrays.equals(Arrays.copyOfRange(m, header.length, m.length),
                                        Arrays.copyOfRange(t, otherHeader, t.length))
                                && (framing.equals("confluent") || Arrays.equals(m, t));
                        if (!same) {
                            different++;
                        }
                    }
                }
                long otherTotal = other.values().stream().mapToLong(List::size).sum();
                report(different == 0 && otherTotal == total, "the other producer's " + otherTotal + " records: " + compared
                        + " compared partition by partition, key and datum" + (framing.equals("confluent") ? "" : " and whole frame")
                        + " identical (" + different + " differ)");
            }
        }
        System.out.println(failures == 0 ? "read-back: all checks passed" : "read-back: " + failures + " check(s) failed");
        return failures == 0;
    }

    /** The id the registry lists for the subject's latest version (GET .../versions/latest). */
    static int latestId(String registry, String subject) throws Exception {
        HttpResponse<String> resp = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create(registry + "/subjects/" + subject + "/versions/latest")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) Json.parse(resp.body());
        return ((Long) m.get("id")).intValue();
    }

    static byte[] key(Path file) throws IOException {
        String hex = Files.readString(file).replaceAll("\\s", "");
        return Text.unhex(hex);
    }

    /**
     * The rows of the file that parse with a plain, independent reading (plain comma split; the
     * simulator's files have no quoted fields), as canonical strings with their pseudonym computed
     * here with javax.crypto directly. Rows the producer refuses may be among them; every record
     * read must match one.
     */
    static Map<String, Integer> expectedRows(Feed feed, Path csv, byte[] key) throws Exception {
        List<String> lines = Files.readAllLines(csv, StandardCharsets.UTF_8);
        List<String> head = Arrays.asList(lines.get(0).split(",", -1));
        Map<String, Integer> out = new HashMap<>();
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.split(",", -1);
            if (f.length != head.size()) {
                continue;
            }
            Map<String, String> row = new HashMap<>();
            for (int i = 0; i < f.length; i++) {
                row.put(head.get(i), f[i].trim());
            }
            try {
                boolean card = feed == Feed.CARD;
                String raw = row.get(card ? "card_number" : "msisdn");
                String id = raw.replaceAll("[ .()-]", "");
                if (id.isEmpty()) {
                    continue;
                }
                mac.reset();
                mac.update((card ? "epitrace/v1/card:" : "epitrace/v1/msisdn:").getBytes(StandardCharsets.US_ASCII));
                byte[] pseudonym = Arrays.copyOf(mac.doFinal(id.getBytes(StandardCharsets.US_ASCII)), 16);
                StringBuilder b = new StringBuilder(Text.hex(pseudonym));
                switch (feed) {
                    case TELECOM:
                        b.append('|').append(row.get("provider"))
                                .append('|').append(millis(row.get("observed_at")))
                                .append('|').append(Double.parseDouble(row.get("lat")))
                                .append('|').append(Double.parseDouble(row.get("lng")))
                                .append('|').append(Double.parseDouble(row.get("accuracy_m")))
                                .append('|').append(row.get("source").toUpperCase(java.util.Locale.ROOT))
                                .append('|').append(row.getOrDefault("site_id", "").isEmpty() ? "null" : row.get("site_id"));
                        break;
                    case CARD:
                        b.append('|').append(row.get("issuer"))
                                .append('|').append(row.get("merchant_id"))
                                .append('|').append(Integer.parseInt(row.get("mcc")))
                                .append('|').append(Double.parseDouble(row.get("lat")))
                                .append('|').append(Double.parseDouble(row.get("lng")))
                                .append('|').append(Double.parseDouble(row.get("accuracy_m")))
                                .append('|').append(millis(row.get("observed_at")));
                        break;
                    default:
                        b.append('|').append(row.get("venue_id"))
                                .append('|').append(Double.parseDouble(row.get("lat")))
                                .append('|').append(Double.parseDouble(row.get("lng")))
                                .append('|').append(millis(row.get("checkin_at")))
                                .append('|').append(row.getOrDefault("checkout_at", "").isEmpty() ? "null" : millis(row.get("checkout_at")));
                }
                out.merge(b.toString(), 1, Integer::sum);
            } catch (RuntimeException e) {
                // not a row a producer can publish
            }
        }
        return out;
    }

    static long millis(String t) {
        if (t.matches("[0-9]+")) {
            return Long.parseLong(t);
        }
        return OffsetDateTime.parse(t).toInstant().toEpochMilli();
    }

    /** The canonical string of a decoded record (same layout as {@link #expectedRows}). */
    static String canonical(Feed feed, GenericRecord r) {
        StringBuilder b = new StringBuilder(Text.hex(((GenericData.Fixed) r.get("subject")).bytes()));
        switch (feed) {
            case TELECOM:
                b.append('|').append(r.get("provider")).append('|').append(r.get("observed_at"))
                        .append('|').append(r.get("lat")).append('|').append(r.get("lng"))
                        .append('|').append(r.get("accuracy_m")).append('|').append(r.get("source"))
                        .append('|').append(r.get("site_id"));
                break;
            case CARD:
                b.append('|').append(r.get("issuer")).append('|').append(r.get("merchant_id"))
                        .append('|').append(r.get("mcc")).append('|').append(r.get("lat"))
                        .append('|').append(r.get("lng")).append('|').append(r.get("accuracy_m"))
                        .append('|').append(r.get("observed_at"));
                break;
            default:
                b.append('|').append(r.get("venue_id")).append('|').append(r.get("lat"))
                        .append('|').append(r.get("lng")).append('|').append(r.get("observed_at"))
                        .append('|').append(r.get("checkout_at"));
        }
        return b.toString();
    }
}
