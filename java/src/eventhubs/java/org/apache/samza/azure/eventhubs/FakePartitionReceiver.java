package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.eventhubs.EventData;
import com.microsoft.azure.eventhubs.EventHubException;
import com.microsoft.azure.eventhubs.EventPosition;
import com.microsoft.azure.eventhubs.PartitionReceiveHandler;
import com.microsoft.azure.eventhubs.PartitionReceiver;
import com.microsoft.azure.eventhubs.ReceiverRuntimeInformation;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads one partition of a {@link FakeHub} from an {@link EventPosition}, in pull mode ({@link
 * #receive}) or push mode ({@link #setReceiveHandler}: a thread of ours polls the file and hands
 * batches of at most the handler's {@code getMaxEventCount()} to {@code onReceive}).
 *
 * <p>Not emulated: epochs do not disconnect other receivers, and the prefetch count changes nothing
 * (the file is the buffer).
 */
final class FakePartitionReceiver implements PartitionReceiver {
  private static final long POLL_MILLIS = 20;

  private final FakeHub hub;
  private final String partitionId;
  private final long epoch;
  private final boolean runtimeMetrics;
  private final Executor executor;
  private final Predicate<FakeHub.Event> startsAt;

  // Read position (guarded by readLock, not by this, which close() holds while it waits for the
  // pump thread): the next line to look at, and whether the start position has been reached.
  private final Object readLock = new Object();
  private long position;
  private long nextSequenceNumber;
  private boolean started;

  private volatile int prefetchCount = DEFAULT_PREFETCH_COUNT;
  private volatile Duration receiveTimeout = Duration.ofSeconds(60);
  private volatile PartitionReceiveHandler handler;
  private volatile Thread pump;
  private volatile boolean closed;

  FakePartitionReceiver(
      FakeHub hub,
      String partitionId,
      Start start,
      long epoch,
      boolean runtimeMetrics,
      Executor executor)
      throws IOException {
    this.hub = hub;
    this.partitionId = partitionId;
    this.epoch = epoch;
    this.runtimeMetrics = runtimeMetrics;
    this.executor = executor;
    this.startsAt = start.filter(hub, partitionId);
  }

  @Override
  public String getPartitionId() {
    return partitionId;
  }

  @Override
  public int getPrefetchCount() {
    return prefetchCount;
  }

  @Override
  public void setPrefetchCount(int count) {
    if (count < MINIMUM_PREFETCH_COUNT) {
      // As the real client does.
      throw new IllegalArgumentException(
          "prefetch count " + count + " is below the minimum " + MINIMUM_PREFETCH_COUNT);
    }
    prefetchCount = count;
  }

  @Override
  public Duration getReceiveTimeout() {
    return receiveTimeout;
  }

  @Override
  public void setReceiveTimeout(Duration timeout) {
    receiveTimeout = timeout;
  }

  @Override
  public long getEpoch() {
    return epoch;
  }

  /** Null unless asked for with {@code ReceiverOptions}, as in the real client. */
  @Override
  public ReceiverRuntimeInformation getRuntimeInformation() {
    if (!runtimeMetrics) {
      return null;
    }
    ReceiverRuntimeInformation info = new ReceiverRuntimeInformation(partitionId);
    try {
      List<FakeHub.Event> all = hub.readAll(partitionId);
      if (!all.isEmpty()) {
        FakeHub.Event last = all.get(all.size() - 1);
        info.setRuntimeInformation(
            last.sequenceNumber, Instant.ofEpochMilli(last.enqueuedMillis), last.offset());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return info;
  }

  /** Up to {@code max} events from the read position; none if nothing new has arrived. */
  List<EventData> next(int max) throws IOException {
    synchronized (readLock) {
      return nextLocked(max);
    }
  }

  private List<EventData> nextLocked(int max) throws IOException {
    List<EventData> out = new ArrayList<>();
    while (out.size() < max) {
      List<FakeHub.Event> batch =
          hub.read(partitionId, position, nextSequenceNumber, started ? max - out.size() : 1000);
      if (batch.isEmpty()) {
        break;
      }
      for (FakeHub.Event e : batch) {
        position = e.nextPosition;
        nextSequenceNumber = e.sequenceNumber + 1;
        if (!started && !startsAt.test(e)) {
          continue;
        }
        started = true;
        out.add(e.toEventData());
        if (out.size() == max) {
          break;
        }
      }
    }
    return out;
  }

  @Override
  public CompletableFuture<Iterable<EventData>> receive(int maxEventCount) {
    if (closed || handler != null) {
      return failed(
          new IllegalStateException(
              "receive() on a receiver that is closed or has a receive handler"));
    }
    return CompletableFuture.supplyAsync(
        () -> {
          long deadline = System.nanoTime() + receiveTimeout.toNanos();
          try {
            do {
              List<EventData> events = next(maxEventCount);
              if (!events.isEmpty()) {
                return events;
              }
              TimeUnit.MILLISECONDS.sleep(POLL_MILLIS);
            } while (System.nanoTime() < deadline && !closed);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return null; // the real client's answer when nothing arrived in time
        },
        executor);
  }

  @Override
  public CompletableFuture<Void> setReceiveHandler(PartitionReceiveHandler receiveHandler) {
    return setReceiveHandler(receiveHandler, false);
  }

  @Override
  public synchronized CompletableFuture<Void> setReceiveHandler(
      PartitionReceiveHandler receiveHandler, boolean invokeWhenNoEvents) {
    if (closed) {
      return failed(new IllegalStateException("the receiver is closed"));
    }
    if (receiveHandler != null && handler != null) {
      // The real client allows one handler at a time too.
      return failed(new IllegalArgumentException("a receive handler is already registered"));
    }
    handler = receiveHandler;
    if (receiveHandler == null) {
      stopPump();
      return CompletableFuture.completedFuture(null);
    }
    Thread t =
        new Thread(
            () -> pump(receiveHandler, invokeWhenNoEvents),
            "fake-eventhubs-" + hub.entityPath() + "-" + partitionId);
    t.setDaemon(true);
    pump = t;
    t.start();
    return CompletableFuture.completedFuture(null);
  }

  private void pump(PartitionReceiveHandler h, boolean invokeWhenNoEvents) {
    long idleSince = System.nanoTime();
    while (!closed && handler == h) {
      List<EventData> batch;
      try {
        batch = next(Math.max(1, h.getMaxEventCount()));
      } catch (IOException | RuntimeException e) {
        if (!closed) {
          // Transient: Samza's handler re-creates the receiver from its last offset.
          h.onError(new EventHubException(true, "cannot read " + describe(), e));
        }
        return;
      }
      if (!batch.isEmpty()) {
        if (!deliver(h, batch)) {
          return;
        }
        idleSince = System.nanoTime();
      } else if (invokeWhenNoEvents && System.nanoTime() - idleSince >= receiveTimeout.toNanos()) {
        if (!deliver(h, null)) {
          return;
        }
        idleSince = System.nanoTime();
      } else {
        try {
          TimeUnit.MILLISECONDS.sleep(POLL_MILLIS);
        } catch (InterruptedException e) {
          return; // closed
        }
      }
    }
  }

  /** False when the handler failed: like the real client, the pump then reports it and stops. */
  private boolean deliver(PartitionReceiveHandler h, List<EventData> batch) {
    try {
      h.onReceive(batch);
      return true;
    } catch (RuntimeException e) {
      if (!closed) {
        h.onError(e);
      }
      return false;
    }
  }

  private void stopPump() {
    Thread t = pump;
    pump = null;
    if (t != null && t != Thread.currentThread()) {
      // It may be blocked handing a batch to a full Samza queue.
      t.interrupt();
      try {
        t.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  @Override
  public synchronized CompletableFuture<Void> close() {
    closed = true;
    handler = null;
    stopPump();
    return CompletableFuture.completedFuture(null);
  }

  @Override
  public void closeSync() {
    close().join();
  }

  private String describe() {
    return "partition " + partitionId + " of event hub '" + hub.entityPath() + "'";
  }

  private static <T> CompletableFuture<T> failed(Throwable t) {
    CompletableFuture<T> f = new CompletableFuture<>();
    f.completeExceptionally(t);
    return f;
  }

  /**
   * Where a receiver starts, read from an {@link EventPosition}. azure-eventhubs 1.0.1's
   * EventPosition has no getters: its only public view of the offset, sequence number, enqueued
   * time and inclusive flag is {@code toString()} ("offset[%s], sequenceNumber[%s],
   * enqueuedTime[%s], inclusiveFlag[%s]", the time in epoch millis), so that is parsed, and an
   * unexpected form fails loudly rather than being guessed at.
   */
  static final class Start {
    private static final Pattern FORM =
        Pattern.compile(
            "offset\\[(.*?)\\], sequenceNumber\\[(.*?)\\], enqueuedTime\\[(.*?)\\],"
                + " inclusiveFlag\\[(.*?)\\]");

    /** The offset the client library uses for "from the start" ({@code fromStartOfStream}). */
    static final String START_OF_STREAM = "-1";

    /** The offset the client library uses for {@code fromEndOfStream}. */
    static final String END_OF_STREAM = "@latest";

    final String offset;
    final Long sequenceNumber;
    final Long enqueuedMillis;
    final boolean inclusive;

    private Start(String offset, Long sequenceNumber, Long enqueuedMillis, boolean inclusive) {
      this.offset = offset;
      this.sequenceNumber = sequenceNumber;
      this.enqueuedMillis = enqueuedMillis;
      this.inclusive = inclusive;
    }

    static Start of(EventPosition position) {
      String text = String.valueOf(position);
      Matcher m = FORM.matcher(text);
      if (!m.matches()) {
        throw new IllegalArgumentException(
            "cannot read EventPosition '" + text + "': azure-eventhubs changed its toString()");
      }
      String offset = nullable(m.group(1));
      String seq = nullable(m.group(2));
      String time = nullable(m.group(3));
      String inclusive = nullable(m.group(4));
      int set = (offset != null ? 1 : 0) + (seq != null ? 1 : 0) + (time != null ? 1 : 0);
      if (set != 1) {
        throw new IllegalArgumentException("EventPosition '" + text + "' names no single start");
      }
      return new Start(
          offset,
          seq == null ? null : Long.valueOf(seq),
          time == null ? null : Long.valueOf(time),
          Boolean.parseBoolean(inclusive));
    }

    private static String nullable(String s) {
      return s.equals("null") ? null : s;
    }

    /**
     * Which events the receiver starts at: the first one that passes, then all after it. The same
     * filters Event Hubs applies ({@code x-opt-offset > 'o'}, {@code >=} when inclusive; likewise
     * for sequence numbers; enqueued time strictly after).
     */
    Predicate<FakeHub.Event> filter(FakeHub hub, String partitionId) throws IOException {
      if (offset != null) {
        if (offset.equals(START_OF_STREAM)) {
          return e -> true;
        }
        if (offset.equals(END_OF_STREAM)) {
          List<FakeHub.Event> all = hub.readAll(partitionId);
          long last = all.isEmpty() ? -1 : all.get(all.size() - 1).position;
          return e -> e.position > last;
        }
        long o;
        try {
          o = Long.parseLong(offset);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException(
              "offset '" + offset + "' is not an offset of event hub '" + hub.entityPath() + "'");
        }
        return inclusive ? e -> e.position >= o : e -> e.position > o;
      }
      if (sequenceNumber != null) {
        long s = sequenceNumber;
        return inclusive ? e -> e.sequenceNumber >= s : e -> e.sequenceNumber > s;
      }
      long t = enqueuedMillis;
      return e -> e.enqueuedMillis > t;
    }

    @Override
    public String toString() {
      return (offset != null ? offset : "-")
          + " "
          + (sequenceNumber != null ? sequenceNumber : "-")
          + " "
          + (enqueuedMillis != null ? enqueuedMillis : "-")
          + " "
          + inclusive;
    }
  }
}
