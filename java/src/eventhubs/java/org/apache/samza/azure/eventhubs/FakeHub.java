package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.eventhubs.EventData;
import com.microsoft.azure.eventhubs.impl.AmqpConstants;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.Comparator;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * One fake event hub that every JVM on this machine sees: the directory {@code
 * <root>/<namespace>/<entity path>} holds one file per partition, named by the partition id ("0",
 * "1", ...), one event per line.
 *
 * <p>An event's sequence number is its line index, and its offset is the byte position where its
 * line starts, as a decimal string: like Event Hubs' offsets, not the sequence number, and opaque
 * to Samza (which only compares them as numbers, as it does Event Hubs' own). Appends hold an
 * exclusive lock on the file, so writers in several JVMs never interleave, and take the enqueued
 * time under it, so enqueued times never decrease within a partition. Readers take only complete
 * lines.
 *
 * <p>A line is four tab-separated fields: enqueued time (epoch millis); partition key ("-" for
 * none, else "k" and the key in base64); body in base64; properties ("-" for none, else
 * comma-separated {@code base64(name):base64(value)}, values kept as their strings).
 */
public final class FakeHub {
  /** Within one JVM two appends must not both lock the file (the JVM refuses overlapping locks). */
  private static final Map<Path, Object> APPEND_MONITORS = new ConcurrentHashMap<>();

  private static final Base64.Encoder B64 = Base64.getEncoder();
  private static final Base64.Decoder B64D = Base64.getDecoder();

  private final Path dir;
  private final String namespace;
  private final String entityPath;

  private FakeHub(Path dir, String namespace, String entityPath) {
    this.dir = dir;
    this.namespace = namespace;
    this.entityPath = entityPath;
  }

  /** Creates an event hub with empty partitions "0" .. partitions-1. */
  public static FakeHub create(Path root, String namespace, String entityPath, int partitions)
      throws IOException {
    Path dir = root.resolve(namespace).resolve(entityPath);
    Files.createDirectories(dir);
    for (int p = 0; p < partitions; p++) {
      Files.createFile(dir.resolve(String.valueOf(p)));
    }
    return new FakeHub(dir, namespace, entityPath);
  }

  /** An existing event hub; like a real namespace, an unknown one is an error. */
  public static FakeHub open(Path root, String namespace, String entityPath) {
    Path dir = root.resolve(namespace).resolve(entityPath);
    if (!Files.isDirectory(dir)) {
      throw new IllegalArgumentException(
          "no event hub '" + entityPath + "' in namespace '" + namespace + "' under " + root);
    }
    return new FakeHub(dir, namespace, entityPath);
  }

  public String namespace() {
    return namespace;
  }

  public String entityPath() {
    return entityPath;
  }

  public String[] partitionIds() {
    int n = 0;
    while (Files.exists(dir.resolve(String.valueOf(n)))) {
      n++;
    }
    String[] ids = new String[n];
    for (int i = 0; i < n; i++) {
      ids[i] = String.valueOf(i);
    }
    return ids;
  }

  public Instant createdAt() {
    try {
      return Files.readAttributes(dir, BasicFileAttributes.class).creationTime().toInstant();
    } catch (IOException e) {
      return Instant.EPOCH;
    }
  }

  private Path file(String partitionId) {
    Path f = dir.resolve(partitionId);
    if (partitionId.isEmpty() || partitionId.contains("/") || !Files.isRegularFile(f)) {
      throw new IllegalArgumentException(
          "event hub '" + entityPath + "' has no partition '" + partitionId + "'");
    }
    return f;
  }

  /** Appends one event to a partition. */
  public void append(
      String partitionId, byte[] body, String partitionKey, Map<String, Object> properties)
      throws IOException {
    Path f = file(partitionId);
    StringBuilder props = new StringBuilder();
    if (properties != null) {
      for (Map.Entry<String, Object> e : properties.entrySet()) {
        if (props.length() > 0) {
          props.append(',');
        }
        props
            .append(b64(e.getKey()))
            .append(':')
            .append(b64(e.getValue() == null ? "" : e.getValue().toString()));
      }
    }
    String rest =
        "\t"
            + (partitionKey == null ? "-" : "k" + b64(partitionKey))
            + "\t"
            + B64.encodeToString(body == null ? new byte[0] : body)
            + "\t"
            + (props.length() == 0 ? "-" : props)
            + "\n";
    synchronized (APPEND_MONITORS.computeIfAbsent(f, k -> new Object())) {
      try (FileChannel ch =
          FileChannel.open(f, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
        ch.lock(); // released when the channel closes
        String line = System.currentTimeMillis() + rest;
        ByteBuffer buf = ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8));
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
    }
  }

  /**
   * Up to {@code max} complete events of a partition, starting with the line at byte {@code
   * position}, whose sequence number is {@code sequenceNumber}.
   */
  public List<Event> read(String partitionId, long position, long sequenceNumber, int max)
      throws IOException {
    List<Event> events = new ArrayList<>();
    try (FileChannel ch = FileChannel.open(file(partitionId), StandardOpenOption.READ)) {
      long pos = position;
      long seq = sequenceNumber;
      int chunk = 64 * 1024;
      while (events.size() < max && pos < ch.size()) {
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(chunk, ch.size() - pos));
        while (buf.hasRemaining() && ch.read(buf, pos + buf.position()) > 0) {
          // keep reading until the buffer is full or the file ends
        }
        byte[] bytes = buf.array();
        int len = buf.position();
        int start = 0;
        for (int i = 0; i < len && events.size() < max; i++) {
          if (bytes[i] == '\n') {
            String line = new String(bytes, start, i - start, StandardCharsets.UTF_8);
            events.add(parse(line, pos + start, pos + i + 1, seq++));
            start = i + 1;
          }
        }
        if (start == 0) {
          if (len < chunk) {
            break; // an incomplete last line: it is being written
          }
          chunk *= 2; // a line longer than the chunk
          continue;
        }
        pos += start;
      }
    }
    return events;
  }

  /** Every complete event of a partition. */
  public List<Event> readAll(String partitionId) throws IOException {
    return read(partitionId, 0, 0, Integer.MAX_VALUE);
  }

  private Event parse(String line, long position, long nextPosition, long sequenceNumber) {
    String[] f = line.split("\t", -1);
    if (f.length != 4) {
      throw new IllegalStateException(
          "event hub '" + entityPath + "': unreadable event at byte " + position + ": " + line);
    }
    String key = f[1].equals("-") ? null : unb64(f[1].substring(1));
    Map<String, Object> props = new HashMap<>();
    if (!f[3].equals("-")) {
      for (String kv : f[3].split(",")) {
        int colon = kv.indexOf(':');
        props.put(unb64(kv.substring(0, colon)), unb64(kv.substring(colon + 1)));
      }
    }
    return new Event(
        position,
        nextPosition,
        sequenceNumber,
        Long.parseLong(f[0]),
        key,
        B64D.decode(f[2]),
        props);
  }

  private static String b64(String s) {
    return B64.encodeToString(s.getBytes(StandardCharsets.UTF_8));
  }

  private static String unb64(String s) {
    return new String(B64D.decode(s), StandardCharsets.UTF_8);
  }

  /** Appends a line to a file that several JVMs append to (a log, not an event hub). */
  public static void appendLine(Path file, String line) throws IOException {
    synchronized (APPEND_MONITORS.computeIfAbsent(file, k -> new Object())) {
      try (FileChannel ch =
          FileChannel.open(
              file,
              StandardOpenOption.CREATE,
              StandardOpenOption.WRITE,
              StandardOpenOption.APPEND)) {
        ch.lock(); // released when the channel closes
        ByteBuffer buf = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8));
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
    }
  }

  /** Deletes a directory tree (a test's event hubs and logs), best effort. */
  public static void deleteTree(Path dir) {
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException ignored) {
      // a temporary directory
    }
  }

  /** One stored event. */
  public static final class Event {
    /** Byte position of its line: its offset is this number as a string. */
    public final long position;

    /** Byte position of the next line. */
    public final long nextPosition;

    public final long sequenceNumber;
    public final long enqueuedMillis;
    public final String partitionKey;
    public final byte[] body;
    public final Map<String, Object> properties;

    Event(
        long position,
        long nextPosition,
        long sequenceNumber,
        long enqueuedMillis,
        String partitionKey,
        byte[] body,
        Map<String, Object> properties) {
      this.position = position;
      this.nextPosition = nextPosition;
      this.sequenceNumber = sequenceNumber;
      this.enqueuedMillis = enqueuedMillis;
      this.partitionKey = partitionKey;
      this.body = body;
      this.properties = Collections.unmodifiableMap(properties);
    }

    /** The offset Event Hubs would report: an opaque string (here the byte position). */
    public String offset() {
      return Long.toString(position);
    }

    public String bodyText() {
      return new String(body, StandardCharsets.UTF_8);
    }

    /**
     * The event as a receiver delivers it. azure-eventhubs 1.0.1 reads the system properties
     * (offset, sequence number, enqueued time, partition key) from an {@link
     * EventData.SystemProperties} map under the AMQP annotation names, and that class has a public
     * constructor taking the map: no reflection needed.
     */
    public EventData toEventData() {
      HashMap<String, Object> system = new HashMap<>();
      system.put(AmqpConstants.OFFSET_ANNOTATION_NAME, offset());
      system.put(AmqpConstants.SEQUENCE_NUMBER_ANNOTATION_NAME, sequenceNumber);
      system.put(AmqpConstants.ENQUEUED_TIME_UTC_ANNOTATION_NAME, new Date(enqueuedMillis));
      if (partitionKey != null) {
        system.put(AmqpConstants.PARTITION_KEY_ANNOTATION_NAME, partitionKey);
      }
      return new FakeEventData(
          body, new HashMap<>(properties), new EventData.SystemProperties(system));
    }
  }
}
