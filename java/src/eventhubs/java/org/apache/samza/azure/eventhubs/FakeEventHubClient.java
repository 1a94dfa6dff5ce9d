package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.eventhubs.BatchOptions;
import com.microsoft.azure.eventhubs.EventData;
import com.microsoft.azure.eventhubs.EventDataBatch;
import com.microsoft.azure.eventhubs.EventHubClient;
import com.microsoft.azure.eventhubs.EventHubException;
import com.microsoft.azure.eventhubs.EventHubRuntimeInformation;
import com.microsoft.azure.eventhubs.EventPosition;
import com.microsoft.azure.eventhubs.PartitionReceiver;
import com.microsoft.azure.eventhubs.PartitionRuntimeInformation;
import com.microsoft.azure.eventhubs.PartitionSender;
import com.microsoft.azure.eventhubs.ReceiverOptions;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An {@link EventHubClient} over a {@link FakeHub}: everything Samza 1.8's Event Hubs consumer,
 * producer and admin call (runtime information, receivers from any {@link EventPosition}, sends
 * with and without a partition key, partition senders, close). Every receiver it creates is
 * recorded in {@code <root>/receivers.log} ({@link #RECEIVERS_LOG}) with the processor, partition
 * and start position, so a test can see where Samza asked to resume.
 */
final class FakeEventHubClient implements EventHubClient {
  /** JVM system property naming this processor in the receivers log. */
  static final String PROCESSOR_PROPERTY = "samza.azure.eventhubs.processor";

  /**
   * One line per receiver: {@code <epoch millis> <processor> <namespace>/<entity path> <partition>
   * <consumer group> <epoch> <offset|-> <sequence number|-> <enqueued millis|-> <inclusive>}.
   */
  static final String RECEIVERS_LOG = "receivers.log";

  /** One line of the {@link #RECEIVERS_LOG}, parsed once: where a receiver was asked to start. */
  static final class ReceiverRecord {
    final long millis;
    final String processor;

    /** {@code <namespace>/<entity path>}. */
    final String hub;

    final String partitionId;
    final String consumerGroup;
    final long epoch;

    /** The start offset, "-" when the receiver starts by sequence number or time. */
    final String offset;

    final String sequenceNumber;
    final String enqueuedMillis;
    final boolean inclusive;
    private final String line;

    private ReceiverRecord(String line, String[] f) {
      this.line = line;
      millis = Long.parseLong(f[0]);
      processor = f[1];
      hub = f[2];
      partitionId = f[3];
      consumerGroup = f[4];
      epoch = Long.parseLong(f[5]);
      offset = f[6];
      sequenceNumber = f[7];
      enqueuedMillis = f[8];
      inclusive = Boolean.parseBoolean(f[9]);
    }

    /** Every complete line of {@code <root>/receivers.log}, in order (none: no log yet). */
    static List<ReceiverRecord> read(Path root) throws IOException {
      List<ReceiverRecord> out = new ArrayList<>();
      Path log = root.resolve(RECEIVERS_LOG);
      if (!Files.exists(log)) {
        return out;
      }
      for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
        String[] f = line.split(" ");
        // Fewer fields: a line still being written.
        if (f.length == 10) {
          out.add(new ReceiverRecord(line, f));
        }
      }
      return out;
    }

    /** The line as written. */
    @Override
    public String toString() {
      return line;
    }
  }

  private final Path root;
  private final FakeHub hub;
  private final AtomicInteger roundRobin = new AtomicInteger();
  private final Set<FakePartitionReceiver> receivers = ConcurrentHashMap.newKeySet();
  private final ExecutorService executor;
  private volatile boolean closed;

  FakeEventHubClient(Path root, FakeHub hub) {
    this.root = root;
    this.hub = hub;
    this.executor =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "fake-eventhubs-client-" + hub.entityPath());
              t.setDaemon(true);
              return t;
            });
  }

  @Override
  public String getEventHubName() {
    return hub.entityPath();
  }

  @Override
  public EventDataBatch createBatch(BatchOptions options) {
    throw new UnsupportedOperationException("batches are not emulated (Samza 1.8 sends singly)");
  }

  @Override
  public CompletableFuture<Void> send(EventData data) {
    return send(nextPartition(), data, null);
  }

  @Override
  public CompletableFuture<Void> send(Iterable<EventData> events) {
    // A batch goes to one partition, as in Event Hubs.
    return sendAll(nextPartition(), events, null);
  }

  @Override
  public CompletableFuture<Void> send(EventDataBatch batch) {
    return failed(new UnsupportedOperationException("batches are not emulated"));
  }

  @Override
  public CompletableFuture<Void> send(EventData data, String partitionKey) {
    if (partitionKey == null) {
      return failed(new IllegalArgumentException("partitionKey cannot be null"));
    }
    return send(partitionFor(partitionKey), data, partitionKey);
  }

  @Override
  public CompletableFuture<Void> send(Iterable<EventData> events, String partitionKey) {
    if (partitionKey == null) {
      return failed(new IllegalArgumentException("partitionKey cannot be null"));
    }
    return sendAll(partitionFor(partitionKey), events, partitionKey);
  }

  CompletableFuture<Void> send(String partitionId, EventData data, String partitionKey) {
    List<EventData> one = new ArrayList<>();
    one.add(data);
    return sendAll(partitionId, one, partitionKey);
  }

  private CompletableFuture<Void> sendAll(
      String partitionId, Iterable<EventData> events, String partitionKey) {
    if (closed) {
      return failed(new IllegalStateException("the client is closed"));
    }
    try {
      for (EventData e : events) {
        hub.append(partitionId, e.getBytes(), partitionKey, e.getProperties());
      }
      return CompletableFuture.completedFuture(null);
    } catch (IOException | RuntimeException e) {
      return failed(
          new EventHubException(
              true, "send to partition " + partitionId + " of '" + hub.entityPath() + "'", e));
    }
  }

  private String nextPartition() {
    String[] ids = hub.partitionIds();
    return ids[Math.floorMod(roundRobin.getAndIncrement(), ids.length)];
  }

  /** Event Hubs maps a partition key to a partition by a hash; this is FNV-1a over its bytes. */
  String partitionFor(String partitionKey) {
    int h = 0x811c9dc5;
    for (byte b : partitionKey.getBytes(StandardCharsets.UTF_8)) {
      h ^= b & 0xff;
      h *= 0x01000193;
    }
    String[] ids = hub.partitionIds();
    return ids[Math.floorMod(h, ids.length)];
  }

  @Override
  public CompletableFuture<PartitionSender> createPartitionSender(String partitionId) {
    if (!contains(partitionId)) {
      return failed(new IllegalArgumentException("no partition '" + partitionId + "'"));
    }
    return CompletableFuture.completedFuture(new FakePartitionSender(this, partitionId));
  }

  @Override
  public CompletableFuture<PartitionReceiver> createReceiver(
      String consumerGroup, String partitionId, EventPosition position) {
    return receiver(consumerGroup, partitionId, position, PartitionReceiver.NULL_EPOCH, null);
  }

  @Override
  public CompletableFuture<PartitionReceiver> createReceiver(
      String consumerGroup, String partitionId, EventPosition position, ReceiverOptions options) {
    return receiver(consumerGroup, partitionId, position, PartitionReceiver.NULL_EPOCH, options);
  }

  @Override
  public CompletableFuture<PartitionReceiver> createEpochReceiver(
      String consumerGroup, String partitionId, EventPosition position, long epoch) {
    return receiver(consumerGroup, partitionId, position, epoch, null);
  }

  @Override
  public CompletableFuture<PartitionReceiver> createEpochReceiver(
      String consumerGroup,
      String partitionId,
      EventPosition position,
      long epoch,
      ReceiverOptions options) {
    return receiver(consumerGroup, partitionId, position, epoch, options);
  }

  private CompletableFuture<PartitionReceiver> receiver(
      String consumerGroup,
      String partitionId,
      EventPosition position,
      long epoch,
      ReceiverOptions options) {
    if (closed) {
      return failed(new IllegalStateException("the client is closed"));
    }
    if (consumerGroup == null || consumerGroup.isEmpty() || !contains(partitionId)) {
      return failed(
          new IllegalArgumentException(
              "no partition '" + partitionId + "' / consumer group '" + consumerGroup + "'"));
    }
    try {
      FakePartitionReceiver.Start start = FakePartitionReceiver.Start.of(position);
      FakePartitionReceiver r =
          new FakePartitionReceiver(
              hub,
              partitionId,
              start,
              epoch,
              options != null && options.getReceiverRuntimeMetricEnabled(),
              executor);
      receivers.add(r);
      FakeHub.appendLine(
          root.resolve(RECEIVERS_LOG),
          System.currentTimeMillis()
              + " "
              + System.getProperty(PROCESSOR_PROPERTY, "-")
              + " "
              + hub.namespace()
              + "/"
              + hub.entityPath()
              + " "
              + partitionId
              + " "
              + consumerGroup
              + " "
              + epoch
              + " "
              + start);
      return CompletableFuture.completedFuture(r);
    } catch (IOException | RuntimeException e) {
      return failed(e);
    }
  }

  private boolean contains(String partitionId) {
    for (String id : hub.partitionIds()) {
      if (id.equals(partitionId)) {
        return true;
      }
    }
    return false;
  }

  @Override
  public CompletableFuture<EventHubRuntimeInformation> getRuntimeInformation() {
    String[] ids = hub.partitionIds();
    return CompletableFuture.completedFuture(
        new EventHubRuntimeInformation(hub.entityPath(), hub.createdAt(), ids.length, ids));
  }

  /**
   * As Event Hubs reports it; an empty partition has last sequence number -1, last offset "-1" and
   * the epoch as last enqueued time.
   */
  @Override
  public CompletableFuture<PartitionRuntimeInformation> getPartitionRuntimeInformation(
      String partitionId) {
    if (!contains(partitionId)) {
      return failed(new IllegalArgumentException("no partition '" + partitionId + "'"));
    }
    try {
      List<FakeHub.Event> all = hub.readAll(partitionId);
      if (all.isEmpty()) {
        return CompletableFuture.completedFuture(
            new PartitionRuntimeInformation(
                hub.entityPath(), partitionId, -1, -1, "-1", Instant.EPOCH));
      }
      FakeHub.Event last = all.get(all.size() - 1);
      return CompletableFuture.completedFuture(
          new PartitionRuntimeInformation(
              hub.entityPath(),
              partitionId,
              all.get(0).sequenceNumber,
              last.sequenceNumber,
              last.offset(),
              Instant.ofEpochMilli(last.enqueuedMillis)));
    } catch (IOException | RuntimeException e) {
      return failed(e);
    }
  }

  @Override
  public CompletableFuture<Void> close() {
    closed = true;
    for (FakePartitionReceiver r : receivers) {
      r.close();
    }
    receivers.clear();
    executor.shutdownNow();
    return CompletableFuture.completedFuture(null);
  }

  @Override
  public void closeSync() {
    close().join();
  }

  static <T> CompletableFuture<T> failed(Throwable t) {
    CompletableFuture<T> f = new CompletableFuture<>();
    f.completeExceptionally(t);
    return f;
  }

  /** Sends to one partition. */
  private static final class FakePartitionSender implements PartitionSender {
    private final FakeEventHubClient client;
    private final String partitionId;

    FakePartitionSender(FakeEventHubClient client, String partitionId) {
      this.client = client;
      this.partitionId = partitionId;
    }

    @Override
    public String getPartitionId() {
      return partitionId;
    }

    @Override
    public EventDataBatch createBatch(BatchOptions options) {
      throw new UnsupportedOperationException("batches are not emulated");
    }

    @Override
    public CompletableFuture<Void> send(EventData data) {
      return client.send(partitionId, data, null);
    }

    @Override
    public CompletableFuture<Void> send(Iterable<EventData> events) {
      return client.sendAll(partitionId, events, null);
    }

    @Override
    public CompletableFuture<Void> send(EventDataBatch batch) {
      return failed(new UnsupportedOperationException("batches are not emulated"));
    }

    @Override
    public CompletableFuture<Void> close() {
      return CompletableFuture.completedFuture(null);
    }

    @Override
    public void closeSync() {}
  }
}
