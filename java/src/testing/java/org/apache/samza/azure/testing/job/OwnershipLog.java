package org.apache.samza.azure.testing.job;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.samza.azure.testing.Await;

/**
 * Reads the ownership logs the tasks write ({@code <dir>/<processor>.log}, see {@link
 * OwnershipTask}) as records, and tells from them who held which partition when: the holds, their
 * overlaps, the current owners, whether the job has settled, and which offsets were processed or
 * skipped. The logs cannot say when a JVM died, froze or lost storage, so those come from {@link
 * ProcessorJvms} and {@link StorageFaults}.
 */
public final class OwnershipLog {
  /** A container that processed nothing for this long after its storage was cut is paused. */
  private static final long PAUSED_AFTER_MS = 1_000;

  private final Path dir;
  private final ProcessorJvms jvms;
  private final StorageFaults faults;

  OwnershipLog(Path dir, ProcessorJvms jvms, StorageFaults faults) {
    this.dir = dir;
    this.jvms = jvms;
    this.faults = faults;
  }

  /** What a log line records. */
  public enum Kind {
    START,
    MSG,
    STOP
  }

  /**
   * One line of a task log: {@code start|msg|stop <processor> <partition> <offset or -> <epoch
   * millis>}. The tasks write it with {@link #line} and the harness reads it with {@link #parse},
   * so the two cannot drift apart.
   */
  public static final class Entry {
    public final Kind kind;
    public final String processor;
    public final int partition;

    /** The message's offset (its line number in the input); -1 for start and stop. */
    public final long offset;

    public final long millis;

    private Entry(Kind kind, String processor, int partition, long offset, long millis) {
      this.kind = kind;
      this.processor = processor;
      this.partition = partition;
      this.offset = offset;
      this.millis = millis;
    }

    /**
     * The line a task writes for an entry; {@code offset} is the message's offset as the input
     * system gave it, or null for start and stop.
     */
    static String line(Kind kind, String processor, int partition, String offset, long millis) {
      return kind.name().toLowerCase(Locale.ROOT)
          + " "
          + processor
          + " "
          + partition
          + " "
          + (offset == null ? "-" : offset)
          + " "
          + millis;
    }

    /** The entry a line records, or null for a line still being written (or of another kind). */
    static Entry parse(String line) {
      String[] f = line.split(" ");
      if (f.length != 5) {
        return null;
      }
      Kind kind;
      switch (f[0]) {
        case "start":
          kind = Kind.START;
          break;
        case "msg":
          kind = Kind.MSG;
          break;
        case "stop":
          kind = Kind.STOP;
          break;
        default:
          return null;
      }
      long offset = kind == Kind.MSG ? Long.parseLong(f[3]) : -1;
      return new Entry(kind, f[1], Integer.parseInt(f[2]), offset, Long.parseLong(f[4]));
    }
  }

  /** One hold of a partition by a processor, from its task's start to its stop (or death). */
  public static final class Hold {
    public final String processor;
    public final int partition;
    public final long start;
    public long end = Long.MAX_VALUE;
    public long messages;
    public long lastMessage;
    public long firstMessage;

    /** Resumed after a SIGSTOP: what it did before its container stopped is what matters. */
    public boolean afterPause;

    Hold(String processor, int partition, long start) {
      this.processor = processor;
      this.partition = partition;
      this.start = start;
    }

    @Override
    public String toString() {
      return processor
          + "@"
          + partition
          + "["
          + start
          + ","
          + (end == Long.MAX_VALUE ? "now" : String.valueOf(end))
          + "] msgs="
          + messages
          + (afterPause ? " (after SIGCONT)" : "");
    }
  }

  /** Processor -> its complete log lines as entries, in the order written. */
  public Map<String, List<Entry>> entries() throws IOException {
    Map<String, List<Entry>> out = new TreeMap<>();
    File[] logs = dir.toFile().listFiles((d, name) -> name.endsWith(".log"));
    for (File log : logs == null ? new File[0] : logs) {
      out.put(log.getName().substring(0, log.getName().length() - 4), read(log.toPath()));
    }
    return out;
  }

  private static List<Entry> read(Path log) throws IOException {
    List<Entry> out = new ArrayList<>();
    for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
      Entry e = Entry.parse(line);
      if (e != null) {
        out.add(e);
      }
    }
    return out;
  }

  /** Every "msg" entry in the log of processor {@code id}, or in every log when it is null. */
  private List<Entry> messages(String id) throws IOException {
    List<Entry> out = new ArrayList<>();
    Iterable<List<Entry>> logs =
        id == null ? entries().values() : Collections.singletonList(read(dir.resolve(id + ".log")));
    for (List<Entry> log : logs) {
      for (Entry e : log) {
        if (e.kind == Kind.MSG) {
          out.add(e);
        }
      }
    }
    return out;
  }

  public List<Hold> holds() throws IOException {
    List<Hold> all = new ArrayList<>();
    for (Map.Entry<String, List<Entry>> log : entries().entrySet()) {
      String id = log.getKey();
      List<Hold> mine = new ArrayList<>();
      List<Entry> messages = new ArrayList<>();
      Map<Integer, Hold> open = new HashMap<>();
      for (Entry e : log.getValue()) {
        if (e.kind == Kind.START) {
          Hold h = new Hold(id, e.partition, e.millis);
          open.put(e.partition, h);
          mine.add(h);
        } else if (e.kind == Kind.STOP && open.containsKey(e.partition)) {
          open.remove(e.partition).end = e.millis;
        } else if (e.kind == Kind.MSG) {
          messages.add(e);
        }
      }
      Long ended = jvms.endedAt(id);
      if (ended != null) {
        for (Hold h : open.values()) {
          h.end = ended;
        }
      }
      List<Hold> parts = splitAtPauses(mine);
      for (Entry m : messages) {
        for (Hold h : parts) {
          if (h.partition == m.partition && h.start <= m.millis && m.millis <= h.end) {
            if (h.messages++ == 0) {
              h.firstMessage = m.millis;
            }
            h.lastMessage = m.millis;
          }
        }
      }
      all.addAll(parts);
    }
    return all;
  }

  /**
   * A frozen process processes nothing, so a hold spanning a SIGSTOP splits in two: the part
   * before, and the part after SIGCONT until the container stopped. The second is judged by the
   * messages it processed, which is the double processing that could happen. A storage outage of
   * the processor's own splits it the same way, at the cut.
   */
  private List<Hold> splitAtPauses(List<Hold> holds) {
    List<Hold> out = new ArrayList<>();
    for (Hold h : holds) {
      Hold rest = h;
      for (long cut : faults.outages(h.processor)) {
        if (rest.start < cut && cut < rest.end) {
          Hold before = new Hold(h.processor, h.partition, rest.start);
          before.end = cut;
          out.add(before);
          Hold after = new Hold(h.processor, h.partition, cut);
          after.end = rest.end;
          after.afterPause = true;
          rest = after;
        }
      }
      for (ProcessorJvms.Pause w : jvms.pauses(h.processor)) {
        if (rest.start < w.from && w.from < rest.end) {
          Hold before = new Hold(h.processor, h.partition, rest.start);
          before.end = w.from;
          out.add(before);
          Hold after = new Hold(h.processor, h.partition, Math.min(w.to(), rest.end));
          after.end = rest.end;
          after.afterPause = true;
          rest = after;
        }
      }
      out.add(rest);
    }
    return out;
  }

  /**
   * Every pair of holds of one partition by two processors that overlap in time. A hold resumed
   * after a SIGSTOP counts from its first to its last processed message (none: no overlap).
   */
  public List<String> overlaps() throws IOException {
    List<String> out = new ArrayList<>();
    List<Hold> holds = holds();
    for (Hold a : holds) {
      for (Hold b : holds) {
        if (a.partition == b.partition
            && a.processor.compareTo(b.processor) < 0
            && activeFrom(a) < activeTo(b)
            && activeFrom(b) < activeTo(a)) {
          out.add(a + " overlaps " + b);
        }
      }
    }
    return out;
  }

  private static long activeFrom(Hold h) {
    return h.afterPause ? (h.messages == 0 ? Long.MAX_VALUE : h.firstMessage) : h.start;
  }

  private static long activeTo(Hold h) {
    return h.afterPause ? (h.messages == 0 ? Long.MIN_VALUE : h.lastMessage + 1) : h.end;
  }

  /** Partition -> every offset any processor processed from it. */
  public Map<Integer, TreeSet<Long>> processedOffsets() throws IOException {
    Map<Integer, TreeSet<Long>> out = new TreeMap<>();
    for (Entry m : messages(null)) {
      out.computeIfAbsent(m.partition, k -> new TreeSet<>()).add(m.offset);
    }
    return out;
  }

  /**
   * Partition -> offsets between its first and last processed offset that no processor processed
   * (empty lists when nothing was skipped); every partition that processed anything is a key.
   */
  public Map<Integer, List<Long>> skippedOffsets() throws IOException {
    Map<Integer, List<Long>> out = new TreeMap<>();
    for (Map.Entry<Integer, TreeSet<Long>> e : processedOffsets().entrySet()) {
      TreeSet<Long> offsets = e.getValue();
      List<Long> missing = new ArrayList<>();
      for (long o = offsets.first(); o <= offsets.last(); o++) {
        if (!offsets.contains(o)) {
          missing.add(o);
        }
      }
      out.put(e.getKey(), missing);
    }
    return out;
  }

  /** Waits until every partition's current holder has processed at least {@code messages}. */
  public void awaitHoldersProcessed(int messages, long boundMillis) throws InterruptedException {
    Await.until(
        "every holder to process " + messages + " messages",
        boundMillis,
        () ->
            currentHolds().stream()
                .filter(h -> h.end == Long.MAX_VALUE)
                .allMatch(h -> h.messages >= messages));
  }

  /**
   * Waits until every partition's current holder has been processing it for at least {@code
   * spanMillis} (from its first to its last processed message in this hold). Unlike a message
   * count, a backlog processed in a burst right after the hold started does not satisfy it, so a
   * holder has run through several commit intervals before, say, a kill.
   */
  public void awaitHoldersProcessedFor(long spanMillis, long boundMillis)
      throws InterruptedException {
    Await.until(
        "every holder to process messages for " + spanMillis + " ms",
        boundMillis,
        () ->
            currentHolds().stream()
                .filter(h -> h.end == Long.MAX_VALUE)
                .allMatch(h -> h.messages > 0 && h.lastMessage - h.firstMessage >= spanMillis));
  }

  /** {@link #holds()} for a condition, which cannot throw a checked exception. */
  private List<Hold> currentHolds() {
    try {
      return holds();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Partition -> processors holding it now. */
  public Map<Integer, List<String>> owners() throws IOException {
    return owners(holds());
  }

  private static Map<Integer, List<String>> owners(List<Hold> holds) {
    Map<Integer, List<String>> owners = new TreeMap<>();
    long now = System.currentTimeMillis();
    for (Hold h : holds) {
      // A frozen (SIGSTOPped, not yet continued) processor holds nothing it can process; nor
      // does a container kept paused after its storage was cut: with input arriving every
      // 50 ms, one that processed nothing for a second is paused.
      boolean paused = h.afterPause && (h.messages == 0 || now - h.lastMessage > PAUSED_AFTER_MS);
      if (h.end == Long.MAX_VALUE && h.start != Long.MAX_VALUE && !paused) {
        owners.computeIfAbsent(h.partition, k -> new ArrayList<>()).add(h.processor);
      }
    }
    return owners;
  }

  /**
   * True when each of the {@code partitions} has exactly one live owner among {@code expected} (and
   * each of them owns something, when there are at least as many partitions), and each owner has
   * processed a message that arrived after {@code sinceMillis}.
   */
  public boolean settled(int partitions, List<String> expected, long sinceMillis)
      throws IOException {
    List<Hold> holds = holds();
    Map<Integer, List<String>> owners = owners(holds);
    if (owners.size() != partitions) {
      return false;
    }
    Map<String, Integer> perProcessor = new HashMap<>();
    for (List<String> o : owners.values()) {
      if (o.size() != 1 || !expected.contains(o.get(0)) || !jvms.isRunning(o.get(0))) {
        return false;
      }
      perProcessor.merge(o.get(0), 1, Integer::sum);
    }
    if (partitions >= expected.size() && perProcessor.size() != expected.size()) {
      return false;
    }
    for (Hold h : holds) {
      if (h.end == Long.MAX_VALUE && h.start != Long.MAX_VALUE && h.lastMessage <= sinceMillis) {
        return false;
      }
    }
    return true;
  }

  /**
   * Milliseconds from {@code sinceMillis} until {@link #settled} holds for {@code expected}, or -1
   * if it did not within {@code boundMillis} of it (benchmarks report that rather than fail).
   */
  public long millisUntilSettled(
      int partitions, List<String> expected, long sinceMillis, long boundMillis)
      throws IOException, InterruptedException {
    while (System.currentTimeMillis() - sinceMillis < boundMillis) {
      if (settled(partitions, expected, sinceMillis)) {
        return System.currentTimeMillis() - sinceMillis;
      }
      // A measurement: the poll interval bounds its resolution.
      Thread.sleep(20);
    }
    return -1;
  }

  /** Every "start" line (a task starting in a container) any processor logged at or after t. */
  public int taskStartsSince(long t) throws IOException {
    int n = 0;
    for (Hold h : holds()) {
      // Holds split at an outage or pause begin at the cut, not at a task start.
      if (h.start >= t && !h.afterPause) {
        n++;
      }
    }
    return n;
  }

  /**
   * Partition -> the time of its first message processed after {@code t} by a processor other than
   * {@code except} (null: by anyone); partitions with none are absent.
   */
  public Map<Integer, Long> firstMessageAfter(long t, String except) throws IOException {
    Map<Integer, Long> out = new TreeMap<>();
    for (Entry m : messages(null)) {
      if (!m.processor.equals(except) && m.millis > t) {
        out.merge(m.partition, m.millis, Math::min);
      }
    }
    return out;
  }

  /**
   * Processor {@code id}'s longest stretch without processing any message between {@code from} and
   * {@code to} (ends included as bounds), in ms.
   */
  public long longestGap(String id, long from, long to) throws IOException {
    List<Long> times = new ArrayList<>();
    for (Entry m : messages(id)) {
      if (m.millis >= from && m.millis <= to) {
        times.add(m.millis);
      }
    }
    Collections.sort(times);
    long gap = 0;
    long last = from;
    for (long at : times) {
      gap = Math.max(gap, at - last);
      last = at;
    }
    return Math.max(gap, to - last);
  }
}
