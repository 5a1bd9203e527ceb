package dev.epitrace.producer;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/**
 * Before the first record: is a broker there, and does it have the topic? One clear line instead
 * of the Kafka client's retries for 20 s.
 */
final class BrokerCheck {
    private BrokerCheck() {}

    static final int CONNECT_SECONDS = 5;
    static final int DESCRIBE_SECONDS = 15;

    static void check(String brokers, String topic, Properties producerConfig) throws KitException {
        reachable(brokers);
        Properties admin = new Properties();
        for (String k : producerConfig.stringPropertyNames()) {
            if (AdminClientConfig.configNames().contains(k)) {
                admin.put(k, producerConfig.getProperty(k));
            }
        }
        admin.put(AdminClientConfig.CLIENT_ID_CONFIG, producerConfig.getProperty("client.id", "epitrace-java-producer") + "-check");
        admin.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Integer.toString(DESCRIBE_SECONDS * 1000));
        admin.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, Integer.toString(DESCRIBE_SECONDS * 1000));
        try (Admin a = Admin.create(admin)) {
            Map<String, TopicDescription> d = a.describeTopics(List.of(topic)).allTopicNames()
                    .get(DESCRIBE_SECONDS, TimeUnit.SECONDS);
            if (d.get(topic) == null || d.get(topic).partitions().isEmpty()) {
                throw new KitException("topic " + topic + " has no partitions on " + brokers);
            }
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof UnknownTopicOrPartitionException) {
                throw new KitException("topic " + topic + " does not exist on " + brokers
                        + ": epitrace's topics are created by epitrace (epitrace topics create), ask its operators");
            }
            if (c instanceof TopicAuthorizationException) {
                throw new KitException("not authorised to describe topic " + topic + " on " + brokers
                        + ": the producer's principal needs WRITE (which includes DESCRIBE) on it");
            }
            throw new KitException("the brokers at " + brokers + " did not describe topic " + topic + ": "
                    + c.getClass().getSimpleName() + (c.getMessage() == null ? "" : ": " + c.getMessage()));
        } catch (java.util.concurrent.TimeoutException e) {
            throw new KitException("the brokers at " + brokers + " did not describe topic " + topic + " within "
                    + DESCRIBE_SECONDS + " s (check --kafka-config: security.protocol, SASL and TLS settings)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KitException("interrupted");
        }
    }

    /** A TCP connection to one of the bootstrap servers within a few seconds. */
    static void reachable(String brokers) throws KitException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CONNECT_SECONDS);
        for (String hp : brokers.split(",")) {
            hp = hp.trim();
            int colon = hp.lastIndexOf(':');
            if (colon <= 0) {
                throw new KitException("--brokers: " + hp + " is not host:port");
            }
            String host = hp.substring(0, colon).replace("[", "").replace("]", "");
            int port;
            try {
                port = Integer.parseInt(hp.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new KitException("--brokers: " + hp + " is not host:port");
            }
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) {
                break;
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), (int) Math.max(1, left));
                return;
            } catch (IOException e) {
                // try the next one
            }
        }
        throw new KitException("no Kafka broker answered at " + brokers + " within " + CONNECT_SECONDS
                + " s: start the broker or fix --brokers");
    }
}
