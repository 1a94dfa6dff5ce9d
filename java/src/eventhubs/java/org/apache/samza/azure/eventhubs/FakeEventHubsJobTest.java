package org.apache.samza.azure.eventhubs;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import org.apache.samza.Partition;
import org.apache.samza.azure.AzureApplicationRunner;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.AzureJobCoordinatorFactory;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.job.InputFeeder;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.checkpoint.CheckpointManager;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.apache.samza.system.SystemStreamPartition;
import org.junit.Test;

/**
 * A real Samza 1.8 job end to end: Samza's own Event Hubs system (samza-azure 1.8.0's consumer,
 * producer and admin, compiled from source) as input and output, our coordinator and runner, our
 * checkpoint manager, a real Azurite, three processors in three JVMs. Only the Event Hubs client is
 * a fake ({@link FakeEventHubClient}, files shared by the JVMs).
 *
 * <p>Input "in" has 4 partitions: 0-2 hold 200 events when the job starts and grow while it runs; 3
 * is empty until every processor is up, so Samza starts it at the "-1" (oldest) sentinel. After
 * checkpoints are committed, the processor holding partition 3 is killed with SIGKILL; the
 * survivors must take over from the committed offsets (not from the start), and in the end every
 * input event must be in output "out".
 */
public class FakeEventHubsJobTest {
  private static final String NAMESPACE = "fakens";
  private static final int IN_PARTITIONS = 4;
  private static final int OUT_PARTITIONS = 3;
  private static final int EMPTY = 3;
  private static final int PREFILL = 200;
  private static final long BOUND = 120_000;

  // The job, set up by the test method.
  private Path hubs;
  private FakeHub in;
  private FakeHub out;
  private Map<String, String> config;
  private StoredCheckpoints stored;
  private RelayProcessors c;
  private final List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));

  // What the phases saw, which later phases check and the report shows.
  private String victim;
  private Map<Integer, List<String>> ownersAtKill;
  private final Map<Integer, String> committedBeforeKill = new TreeMap<>();
  private final Map<Integer, Integer> eventsAtKill = new TreeMap<>();
  private long killedAt;
  private Set<String> inputIds;
  private Map<String, Integer> exits;
  private Map<String, List<RelayProcessors.Record>> records;
  private Map<String, Integer> outBodies;
  private FakeEventHubClient.ReceiverRecord firstEmptyReceiver;

  /** Per partition, where its first holder after the kill resumed; null: kept, no restart. */
  private final Map<Integer, Resume> resumes = new TreeMap<>();

  /** Per partition, its last input event, whose offset the final checkpoint is. */
  private final Map<Integer, FakeHub.Event> lastEvents = new TreeMap<>();

  @Test
  public void relaysEveryEventAndResumesFromCommittedOffsetsAfterKill9() throws Exception {
    long began = System.currentTimeMillis();
    Path dir = Files.createTempDirectory("samza-eventhubs-e2e");
    hubs = dir.resolve("hubs");
    in = FakeHub.create(hubs, NAMESPACE, RelayApp.INPUT, IN_PARTITIONS);
    out = FakeHub.create(hubs, NAMESPACE, RelayApp.OUTPUT, OUT_PARTITIONS);
    try (Azurite azurite = Azurite.start();
        Feeder feeder = new Feeder(in)) {
      for (int p = 0; p < IN_PARTITIONS; p++) {
        if (p != EMPTY) {
          for (int n = 0; n < PREFILL; n++) {
            feeder.append(p);
          }
        }
      }
      config = config(azurite, hubs);
      stored = new StoredCheckpoints(config, azurite.connectionString());
      List<String> jvmArgs =
          new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
      try (RelayProcessors processors =
          new RelayProcessors(
              dir, config, jvmArgs, System.getProperty("samza.azure.test.classpath"))) {
        c = processors;
        for (String id : live) {
          c.start(id);
        }
        feeder.feed(Arrays.asList(0, 1, 2));
        awaitReceiverOfEmptyPartition();
        feeder.feed(Arrays.asList(0, 1, 2, EMPTY));
        awaitSteadyState();
        killHolderOfEmptyPartition();
        awaitSurvivorsCatchUp();
        feeder.stop();
        awaitAllRelayedAndCommitted();
        exits = c.stop(live);

        records = c.records();
        assertNothingLost();
        assertEmptyPartitionStartedAtOldest();
        for (int p = 0; p < IN_PARTITIONS; p++) {
          assertNoneSkipped(p);
          assertResumedFromCommit(p);
          assertFinalCheckpoint(p);
        }
        System.out.print(report(began));
      }
    }
    // Kept for a look when the test fails.
    FakeHub.deleteTree(dir);
  }

  /** Partition 3 gets a receiver while it is still empty; only then does it get events. */
  private void awaitReceiverOfEmptyPartition() throws Exception {
    await("a receiver for the empty partition " + EMPTY, () -> !receivers("in", EMPTY).isEmpty());
  }

  /**
   * Steady state: every processor holds a partition, every partition is being processed (40 events
   * at least by its current holder: two seconds of commits) and has a committed input offset.
   */
  private void awaitSteadyState() throws Exception {
    await(
        "three processors holding all partitions, processing and committing",
        () -> {
          Map<Integer, List<String>> owners = c.owners();
          if (owners.size() != IN_PARTITIONS
              || owners.values().stream().anyMatch(o -> o.size() != 1)
              || owners.values().stream().map(o -> o.get(0)).distinct().count() != 3) {
            return false;
          }
          Map<String, List<RelayProcessors.Record>> now = c.records();
          for (Map.Entry<Integer, List<String>> e : owners.entrySet()) {
            if (processedInCurrentHold(now.get(e.getValue().get(0)), e.getKey()) < 40
                || committed(stored, e.getKey()) == null) {
              return false;
            }
          }
          return true;
        });
  }

  /** SIGKILL to the holder of the once empty partition, after noting what was committed. */
  private void killHolderOfEmptyPartition() throws Exception {
    victim = c.owners().get(EMPTY).get(0);
    ownersAtKill = c.owners();
    for (int p = 0; p < IN_PARTITIONS; p++) {
      committedBeforeKill.put(p, committed(stored, p));
    }
    for (int p = 0; p < IN_PARTITIONS; p++) {
      eventsAtKill.put(p, in.readAll(String.valueOf(p)).size());
    }
    killedAt = System.currentTimeMillis();
    c.kill(victim);
    live.remove(victim);
  }

  /** The survivors hold everything and process events that arrived after the kill. */
  private void awaitSurvivorsCatchUp() throws Exception {
    await(
        "the survivors " + live + " to process new events of every partition",
        () -> {
          Map<Integer, List<String>> owners = c.owners();
          if (owners.size() != IN_PARTITIONS
              || owners.values().stream().anyMatch(o -> o.size() != 1)) {
            return false;
          }
          Map<String, List<RelayProcessors.Record>> now = c.records();
          for (int p = 0; p < IN_PARTITIONS; p++) {
            long newest = -1;
            for (String s : live) {
              for (RelayProcessors.Record r : now.getOrDefault(s, new ArrayList<>())) {
                if (r.kind.equals("msg") && r.partition == p && r.millis > killedAt) {
                  newest = Math.max(newest, r.sequenceNumber);
                }
              }
            }
            if (newest < eventsAtKill.get(p)) {
              return false;
            }
          }
          return true;
        });
  }

  /**
   * Every input event reaches the output. Samza commits every task.commit.ms, not when a container
   * stops: so it also waits for the commits that cover the last events before stopping.
   */
  private void awaitAllRelayedAndCommitted() throws Exception {
    inputIds = new TreeSet<>();
    for (int p = 0; p < IN_PARTITIONS; p++) {
      for (FakeHub.Event e : in.readAll(String.valueOf(p))) {
        inputIds.add(e.bodyText());
      }
    }
    await(
        "all " + inputIds.size() + " input events in the output",
        () -> bodies(out).keySet().containsAll(inputIds));
    await(
        "the last event of every partition to be committed",
        () -> {
          for (int p = 0; p < IN_PARTITIONS; p++) {
            List<FakeHub.Event> events = in.readAll(String.valueOf(p));
            String lastOffset = events.get(events.size() - 1).offset();
            if (!lastOffset.equals(committed(stored, p))) {
              return false;
            }
          }
          return true;
        });
  }

  /** The output holds the input's events and nothing else, keyed as Samza's producer sends. */
  private void assertNothingLost() throws IOException {
    outBodies = bodies(out);
    assertEquals("output events that no input had", inputIds, outBodies.keySet());
    for (int p = 0; p < OUT_PARTITIONS; p++) {
      for (FakeHub.Event e : out.readAll(String.valueOf(p))) {
        // Samza's producer keys by the envelope key (Event Hubs hashing) and sends the key.
        assertEquals(e.bodyText(), e.partitionKey);
        assertEquals(e.bodyText(), e.properties.get("key"));
      }
    }
  }

  /**
   * The empty partition started at the "-1" sentinel (Samza's oldest), exclusive, and its first
   * event was processed.
   */
  private void assertEmptyPartitionStartedAtOldest() throws IOException {
    firstEmptyReceiver = receivers("in", EMPTY).get(0);
    assertEquals(
        "first receiver of the empty partition: " + firstEmptyReceiver,
        "-1",
        firstEmptyReceiver.offset);
    assertEquals(false, firstEmptyReceiver.inclusive);
  }

  /** No event of the partition was skipped by the processors together. */
  private void assertNoneSkipped(int p) throws IOException {
    List<FakeHub.Event> events = in.readAll(String.valueOf(p));
    Map<String, Long> sequenceOf = sequenceNumbers(p);
    TreeSet<Long> processed = new TreeSet<>();
    for (List<RelayProcessors.Record> rs : records.values()) {
      for (RelayProcessors.Record r : rs) {
        if (r.kind.equals("msg") && r.partition == p) {
          processed.add(r.sequenceNumber);
          assertEquals(
              "offset of seq " + r.sequenceNumber,
              sequenceOf.get(r.offset),
              (Long) r.sequenceNumber);
        }
      }
    }
    assertEquals("partition " + p + " processed", events.size(), processed.size());
    assertEquals(0L, (long) processed.first());
    assertEquals(events.size() - 1L, (long) processed.last());
  }

  /**
   * Where the first holder after the kill resumed. With sticky assignment a survivor keeps its own
   * partitions through the rebalance, without a restart: those must be the survivors' own and
   * processed on after the kill; the victim's must resume from their committed offset.
   */
  private void assertResumedFromCommit(int p) throws IOException {
    Map<String, Long> sequenceOf = sequenceNumbers(p);
    Resume r = resume(p);
    resumes.put(p, r);
    List<String> heldAtKill = ownersAtKill.getOrDefault(p, new ArrayList<>());
    if (r == null) {
      assertFalse(
          "partition " + p + " of the killed " + victim + " was never resumed",
          heldAtKill.contains(victim));
      assertTrue(
          "partition " + p + " was kept by " + heldAtKill + " and processed after the kill",
          keptAndProcessed(records, heldAtKill, p, killedAt));
      return;
    }
    String before = committedBeforeKill.get(p);
    assertNotNull("partition " + p + " had a committed offset before the kill", before);
    assertNotNull("partition " + p + ": no receiver before its first event", r.offset);
    assertTrue("committed offset " + before, sequenceOf.containsKey(before));
    assertFalse("partition " + p + " resumed at the oldest sentinel", r.offset.equals("-1"));
    assertTrue(
        "partition " + p + " resumed at " + r.offset + ", not an offset of the partition",
        sequenceOf.containsKey(r.offset));
    long resumedAfter = sequenceOf.get(r.offset);
    r.resumedAfter = resumedAfter;
    r.committedSequenceNumber = sequenceOf.get(before);
    assertTrue(
        "partition " + p + " resumed before what was committed before the kill",
        resumedAfter >= sequenceOf.get(before));
    assertEquals("exclusive resume", resumedAfter + 1, r.firstSequenceNumber);
    assertTrue(
        "partition "
            + p
            + " skipped events: first "
            + r.firstSequenceNumber
            + " last "
            + r.lastBefore,
        r.firstSequenceNumber <= r.lastBefore + 1);
    assertTrue("partition " + p + " restarted from its start", r.firstSequenceNumber > 0);
  }

  /**
   * The final checkpoint, read through our checkpoint manager (versions 1 and 2), is the last
   * event's offset string as the hub gave it (a byte position, not the sequence number), and the
   * same in the table.
   */
  private void assertFinalCheckpoint(int p) throws Exception {
    List<FakeHub.Event> events = in.readAll(String.valueOf(p));
    FakeHub.Event last = events.get(events.size() - 1);
    lastEvents.put(p, last);
    SystemStreamPartition ssp =
        new SystemStreamPartition(RelayApp.SYSTEM, RelayApp.INPUT, new Partition(p));
    for (short version = 1; version <= 2; version++) {
      Checkpoint cp = readThroughManager(config, p, version);
      assertNotNull("checkpoint v" + version + " of partition " + p, cp);
      assertEquals(version, cp.getVersion());
      assertEquals("checkpoint v" + version, last.offset(), cp.getOffsets().get(ssp));
      assertEquals(last.offset(), stored.read(task(p)).get(version).getOffsets().get(ssp));
    }
    assertFalse(last.offset().equals(Long.toString(last.sequenceNumber)));
  }

  /** What happened, from what the phases saw (printed when the test passes). */
  private String report(long began) throws IOException {
    int outEvents = outBodies.values().stream().mapToInt(Integer::intValue).sum();
    StringBuilder report = new StringBuilder();
    report.append(
        String.format(
            "input: %d events (%s per partition); output: %d events, %d distinct, %d"
                + " duplicates; killed %s (held %s) at +%d ms; stop exits %s%n",
            inputIds.size(),
            eventsPerPartition(in),
            outEvents,
            outBodies.size(),
            outEvents - outBodies.size(),
            victim,
            partitionsOf(ownersAtKill, victim),
            killedAt - began,
            exits));
    report.append(
        String.format(
            "partition %d was empty at start: first receiver at offset %s (inclusive %s) by %s%n",
            EMPTY,
            firstEmptyReceiver.offset,
            firstEmptyReceiver.inclusive,
            firstEmptyReceiver.processor));
    for (int p = 0; p < IN_PARTITIONS; p++) {
      Resume r = resumes.get(p);
      if (r == null) {
        report.append(
            String.format(
                "partition %d: kept by %s through the rebalance, no restart%n",
                p, ownersAtKill.getOrDefault(p, new ArrayList<>())));
      } else {
        report.append(
            String.format(
                "partition %d: %s held by %s; committed before kill: offset %s (seq %d);"
                    + " %s resumed after offset %s (seq %d): first processed seq %d, last"
                    + " processed before %d (%d reprocessed)%n",
                p,
                victimOrNot(ownersAtKill, p, victim),
                ownersAtKill.get(p),
                committedBeforeKill.get(p),
                r.committedSequenceNumber,
                r.processor,
                r.offset,
                r.resumedAfter,
                r.firstSequenceNumber,
                r.lastBefore,
                r.lastBefore + 1 - r.firstSequenceNumber));
      }
      FakeHub.Event last = lastEvents.get(p);
      report.append(
          String.format(
              "partition %d: final checkpoint v1 = v2 = \"%s\" (last event, seq %d)%n",
              p, last.offset(), last.sequenceNumber));
    }
    report.append(String.format("took %d ms%n", System.currentTimeMillis() - began));
    return report.toString();
  }

  /** Offset -> sequence number of every event of input partition {@code p}. */
  private Map<String, Long> sequenceNumbers(int p) throws IOException {
    Map<String, Long> sequenceOf = new HashMap<>();
    for (FakeHub.Event e : in.readAll(String.valueOf(p))) {
      sequenceOf.put(e.offset(), e.sequenceNumber);
    }
    return sequenceOf;
  }

  private static Map<String, String> config(Azurite azurite, Path hubs) {
    Map<String, String> c = new HashMap<>();
    c.put("job.name", "ehrelay");
    c.put("job.id", "1");
    c.put("app.runner.class", AzureApplicationRunner.class.getName());
    c.put("job.coordinator.factory", AzureJobCoordinatorFactory.class.getName());
    c.put("task.checkpoint.factory", AzureCheckpointManagerFactory.class.getName());
    c.put("sensitive.azure.storage.connect", azurite.connectionString());
    c.put("task.commit.ms", "300");
    c.put("task.shutdown.ms", "10000");
    c.put("systems.eventhubs.samza.factory", FakeEventHubSystemFactory.class.getName());
    c.put(String.format(FakeEventHubClientManagerFactory.ROOT, "eventhubs"), hubs.toString());
    c.put("systems.eventhubs.stream.list", "in,out");
    c.put("systems.eventhubs.default.stream.samza.offset.default", "oldest");
    for (String stream : new String[] {"in", "out"}) {
      c.put("streams." + stream + ".samza.system", "eventhubs");
      c.put("streams." + stream + ".eventhubs.namespace", NAMESPACE);
      c.put("streams." + stream + ".eventhubs.entitypath", stream);
      c.put("sensitive.streams." + stream + ".eventhubs.sas.keyname", "RootManageSharedAccessKey");
      c.put("sensitive.streams." + stream + ".eventhubs.sas.token", "not-a-real-key");
    }
    return c;
  }

  private static String task(int partition) {
    return "Partition " + partition;
  }

  /** The input offset committed for a partition (version 1), or null. */
  private static String committed(StoredCheckpoints stored, int partition) throws Exception {
    Checkpoint v1 = stored.read(task(partition)).get((short) 1);
    return v1 == null
        ? null
        : v1.getOffsets()
            .get(
                new SystemStreamPartition(
                    RelayApp.SYSTEM, RelayApp.INPUT, new Partition(partition)));
  }

  /** Our checkpoint manager, as a container would use it (all processors are stopped by now). */
  private static Checkpoint readThroughManager(Map<String, String> config, int p, short version) {
    Map<String, String> c = new HashMap<>(config);
    c.put("task.checkpoint.read.versions", String.valueOf(version));
    c.put("processor.id", "test-reader");
    CheckpointManager m =
        new AzureCheckpointManagerFactory()
            .getCheckpointManager(new MapConfig(c), new MetricsRegistryMap());
    TaskName task = new TaskName(task(p));
    m.register(task);
    m.start();
    try {
      return m.readLastCheckpoint(task);
    } finally {
      m.stop();
    }
  }

  /** How many messages of the partition the processor's current hold of it processed. */
  private static int processedInCurrentHold(List<RelayProcessors.Record> records, int partition) {
    int n = 0;
    for (RelayProcessors.Record r : records) {
      if (r.partition != partition) {
        continue;
      }
      if (r.kind.equals("start")) {
        n = 0;
      } else if (r.kind.equals("msg")) {
        n++;
      }
    }
    return n;
  }

  /** Where the first holder of a partition after the kill started. */
  private static final class Resume {
    String processor;
    String offset;
    long firstSequenceNumber;
    long lastBefore = -1;

    /** Set once checked: the sequence numbers of the resume offset and of the commit. */
    long resumedAfter;

    long committedSequenceNumber;
  }

  /** Where the first holder of {@code partition} after the kill resumed, or null if none did. */
  private Resume resume(int partition) throws IOException {
    // The first message processed after the kill by a task started after the kill.
    RelayProcessors.Record firstAfter = null;
    for (List<RelayProcessors.Record> rs : records.values()) {
      boolean started = false;
      for (RelayProcessors.Record r : rs) {
        if (r.partition != partition) {
          continue;
        }
        if (r.kind.equals("start") && r.millis > killedAt) {
          started = true;
        } else if (r.kind.equals("msg") && started) {
          if (firstAfter == null || r.millis < firstAfter.millis) {
            firstAfter = r;
          }
          break;
        }
      }
    }
    if (firstAfter == null) {
      return null;
    }
    Resume resume = new Resume();
    resume.processor = firstAfter.processor;
    resume.firstSequenceNumber = firstAfter.sequenceNumber;
    // Everything processed before that holder's task started.
    long holderStart = Long.MAX_VALUE;
    for (RelayProcessors.Record r : records.get(firstAfter.processor)) {
      if (r.partition == partition && r.kind.equals("start") && r.millis > killedAt) {
        holderStart = Math.min(holderStart, r.millis);
      }
    }
    for (List<RelayProcessors.Record> rs : records.values()) {
      for (RelayProcessors.Record r : rs) {
        if (r.partition == partition && r.kind.equals("msg") && r.millis < holderStart) {
          resume.lastBefore = Math.max(resume.lastBefore, r.sequenceNumber);
        }
      }
    }
    // Its receiver: the last one that processor created for the partition before processing.
    for (FakeEventHubClient.ReceiverRecord receiver : receivers("in", partition)) {
      if (receiver.processor.equals(firstAfter.processor)
          && receiver.millis > killedAt
          && receiver.millis <= firstAfter.millis) {
        resume.offset = receiver.offset;
      }
    }
    return resume;
  }

  /** The receivers created for a partition of an event hub, in order. */
  private List<FakeEventHubClient.ReceiverRecord> receivers(String entityPath, int partition)
      throws IOException {
    List<FakeEventHubClient.ReceiverRecord> out = new ArrayList<>();
    for (FakeEventHubClient.ReceiverRecord r : FakeEventHubClient.ReceiverRecord.read(hubs)) {
      if (r.hub.equals(NAMESPACE + "/" + entityPath)
          && r.partitionId.equals(String.valueOf(partition))) {
        out.add(r);
      }
    }
    return out;
  }

  /** Body -> how many times it is in the hub. */
  private static Map<String, Integer> bodies(FakeHub hub) throws IOException {
    Map<String, Integer> out = new TreeMap<>();
    for (String p : hub.partitionIds()) {
      for (FakeHub.Event e : hub.readAll(p)) {
        out.merge(e.bodyText(), 1, Integer::sum);
      }
    }
    return out;
  }

  private static List<Integer> eventsPerPartition(FakeHub hub) throws IOException {
    List<Integer> out = new ArrayList<>();
    for (String p : hub.partitionIds()) {
      out.add(hub.readAll(p).size());
    }
    return out;
  }

  private static List<Integer> partitionsOf(Map<Integer, List<String>> owners, String processor) {
    List<Integer> out = new ArrayList<>();
    owners.forEach(
        (p, o) -> {
          if (o.contains(processor)) {
            out.add(p);
          }
        });
    return out;
  }

  /** A holder at the kill that processed {@code partition} after it, with no new start. */
  private static boolean keptAndProcessed(
      Map<String, List<RelayProcessors.Record>> records,
      List<String> holders,
      int partition,
      long killedAt) {
    for (String holder : holders) {
      boolean processed = false;
      for (RelayProcessors.Record r : records.getOrDefault(holder, new ArrayList<>())) {
        if (r.partition == partition && r.millis > killedAt) {
          if (r.kind.equals("start")) {
            return false;
          }
          processed |= r.kind.equals("msg");
        }
      }
      if (processed) {
        return true;
      }
    }
    return false;
  }

  private static String victimOrNot(Map<Integer, List<String>> owners, int p, String victim) {
    return owners.get(p).contains(victim) ? "killed processor's," : "survivor's,";
  }

  /** Waits for a condition, failing early (with their output) if a live processor died. */
  private void await(String what, Callable<Boolean> condition) throws Exception {
    try {
      Await.until(
          what,
          BOUND,
          () -> {
            for (String id : live) {
              if (!c.isRunning(id)) {
                throw new AssertionError(id + " exited while waiting for " + what);
              }
            }
            try {
              return condition.call();
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            } catch (RuntimeException e) {
              throw e;
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
          });
    } catch (AssertionError e) {
      StringBuilder tails = new StringBuilder(e.getMessage());
      for (String id : live) {
        tails.append("\n---- ").append(id).append(" ----\n").append(c.tail(id, 60));
      }
      throw new AssertionError(tails.toString(), e);
    }
  }

  /**
   * Appends events with unique ids ("in-<partition>-<n>") to the input, as an outside producer
   * would: on demand, and to the partitions it is told to feed every 50 ms ({@link InputFeeder}).
   */
  private static final class Feeder implements AutoCloseable {
    private final FakeHub hub;
    private final Map<Integer, Integer> next = new HashMap<>();
    private final InputFeeder feeder;

    Feeder(FakeHub hub) {
      this.hub = hub;
      this.feeder = new InputFeeder((partition, round) -> append(partition));
    }

    /** Synchronized: the feeder's thread and the test's prefill share the counters. */
    synchronized void append(int partition) throws IOException {
      int n = next.merge(partition, 1, Integer::sum) - 1;
      hub.append(
          String.valueOf(partition),
          ("in-" + partition + "-" + n).getBytes(StandardCharsets.UTF_8),
          null,
          null);
    }

    void feed(List<Integer> partitions) {
      feeder.feed(partitions);
    }

    void stop() {
      feeder.stop();
    }

    @Override
    public void close() {
      stop();
    }
  }
}
