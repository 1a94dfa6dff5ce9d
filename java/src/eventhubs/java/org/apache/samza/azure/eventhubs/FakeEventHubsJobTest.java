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
import java.util.HashSet;
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

  @Test
  public void relaysEveryEventAndResumesFromCommittedOffsetsAfterKill9() throws Exception {
    long began = System.currentTimeMillis();
    Path dir = Files.createTempDirectory("samza-eventhubs-e2e");
    Path hubs = dir.resolve("hubs");
    FakeHub in = FakeHub.create(hubs, NAMESPACE, RelayApp.INPUT, IN_PARTITIONS);
    FakeHub out = FakeHub.create(hubs, NAMESPACE, RelayApp.OUTPUT, OUT_PARTITIONS);
    try (Azurite azurite = Azurite.start();
        Feeder feeder = new Feeder(in)) {
      for (int p = 0; p < IN_PARTITIONS; p++) {
        if (p != EMPTY) {
          for (int n = 0; n < PREFILL; n++) {
            feeder.append(p);
          }
        }
      }
      Map<String, String> config = config(azurite, hubs);
      StoredCheckpoints stored = new StoredCheckpoints(config, azurite.connectionString());
      List<String> jvmArgs =
          new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
      try (RelayProcessors c =
          new RelayProcessors(
              dir, config, jvmArgs, System.getProperty("samza.azure.test.classpath"))) {
        List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));
        for (String id : live) {
          c.start(id);
        }
        feeder.start(Arrays.asList(0, 1, 2));

        // Partition 3 gets a receiver while it is still empty; only then does it get events.
        await(
            c,
            live,
            "a receiver for the empty partition " + EMPTY,
            () -> !receivers(hubs, "in", EMPTY).isEmpty());
        feeder.start(Arrays.asList(0, 1, 2, EMPTY));

        // Steady state: every processor holds a partition, every partition is being processed
        // (40 events at least by its current holder: two seconds of commits) and has a committed
        // input offset.
        await(
            c,
            live,
            "three processors holding all partitions, processing and committing",
            () -> {
              Map<Integer, List<String>> owners = c.owners();
              if (owners.size() != IN_PARTITIONS
                  || owners.values().stream().anyMatch(o -> o.size() != 1)
                  || owners.values().stream().map(o -> o.get(0)).distinct().count() != 3) {
                return false;
              }
              Map<String, List<RelayProcessors.Record>> records = c.records();
              for (Map.Entry<Integer, List<String>> e : owners.entrySet()) {
                if (processedInCurrentHold(records.get(e.getValue().get(0)), e.getKey()) < 40
                    || committed(stored, e.getKey()) == null) {
                  return false;
                }
              }
              return true;
            });

        String victim = c.owners().get(EMPTY).get(0);
        Map<Integer, List<String>> ownersAtKill = c.owners();
        Map<Integer, String> committedBeforeKill = new TreeMap<>();
        for (int p = 0; p < IN_PARTITIONS; p++) {
          committedBeforeKill.put(p, committed(stored, p));
        }
        Map<Integer, Integer> eventsAtKill = new TreeMap<>();
        for (int p = 0; p < IN_PARTITIONS; p++) {
          eventsAtKill.put(p, in.readAll(String.valueOf(p)).size());
        }
        long killedAt = System.currentTimeMillis();
        c.kill(victim);
        live.remove(victim);

        // The survivors hold everything and process events that arrived after the kill.
        await(
            c,
            live,
            "the survivors " + live + " to process new events of every partition",
            () -> {
              Map<Integer, List<String>> owners = c.owners();
              if (owners.size() != IN_PARTITIONS
                  || owners.values().stream().anyMatch(o -> o.size() != 1)) {
                return false;
              }
              Map<String, List<RelayProcessors.Record>> records = c.records();
              for (int p = 0; p < IN_PARTITIONS; p++) {
                long newest = -1;
                for (String s : live) {
                  for (RelayProcessors.Record r : records.getOrDefault(s, new ArrayList<>())) {
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
        feeder.stop();

        // Every input event reaches the output.
        Set<String> inputIds = new TreeSet<>();
        for (int p = 0; p < IN_PARTITIONS; p++) {
          for (FakeHub.Event e : in.readAll(String.valueOf(p))) {
            inputIds.add(e.bodyText());
          }
        }
        await(
            c,
            live,
            "all " + inputIds.size() + " input events in the output",
            () -> bodies(out).keySet().containsAll(inputIds));
        // Samza commits every task.commit.ms, not when a container stops: wait for the commits
        // that cover the last events before stopping.
        await(
            c,
            live,
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
        Map<String, Integer> exits = c.stop(live);

        // ---- what happened ----
        Map<String, List<RelayProcessors.Record>> records = c.records();
        Map<String, Integer> outBodies = bodies(out);
        int outEvents = outBodies.values().stream().mapToInt(Integer::intValue).sum();
        assertEquals("output events that no input had", inputIds, outBodies.keySet());
        for (int p = 0; p < OUT_PARTITIONS; p++) {
          for (FakeHub.Event e : out.readAll(String.valueOf(p))) {
            // Samza's producer keys by the envelope key (Event Hubs hashing) and sends the key.
            assertEquals(e.bodyText(), e.partitionKey);
            assertEquals(e.bodyText(), e.properties.get("key"));
          }
        }

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

        // The empty partition started at the "-1" sentinel (Samza's oldest), exclusive, and its
        // first event was processed.
        List<String[]> emptyReceivers = receivers(hubs, "in", EMPTY);
        String[] first = emptyReceivers.get(0);
        assertEquals(
            "first receiver of the empty partition: " + Arrays.toString(first), "-1", first[6]);
        assertEquals("false", first[9]);
        report.append(
            String.format(
                "partition %d was empty at start: first receiver at offset %s (inclusive %s) by"
                    + " %s%n",
                EMPTY, first[6], first[9], first[1]));

        for (int p = 0; p < IN_PARTITIONS; p++) {
          List<FakeHub.Event> events = in.readAll(String.valueOf(p));
          Map<String, Long> sequenceOf = new HashMap<>();
          for (FakeHub.Event e : events) {
            sequenceOf.put(e.offset(), e.sequenceNumber);
          }

          // No event of the partition was skipped by the processors together.
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

          // Where the first holder after the kill resumed. With sticky assignment a survivor
          // keeps its own partitions through the rebalance, without a restart: those must be
          // the survivors' own and processed on after the kill; the victim's must resume.
          Resume r = resume(records, hubs, p, killedAt);
          List<String> heldAtKill = ownersAtKill.getOrDefault(p, new ArrayList<>());
          if (r == null) {
            assertFalse(
                "partition " + p + " of the killed " + victim + " was never resumed",
                heldAtKill.contains(victim));
            assertTrue(
                "partition " + p + " was kept by " + heldAtKill + " and processed after the kill",
                keptAndProcessed(records, heldAtKill, p, killedAt));
            report.append(
                String.format(
                    "partition %d: kept by %s through the rebalance, no restart%n", p, heldAtKill));
          } else {
            String before = committedBeforeKill.get(p);
            assertNotNull("partition " + p + " had a committed offset before the kill", before);
            assertNotNull("partition " + p + ": no receiver before its first event", r.offset);
            assertTrue("committed offset " + before, sequenceOf.containsKey(before));
            assertFalse(
                "partition " + p + " resumed at the oldest sentinel", r.offset.equals("-1"));
            assertTrue(
                "partition " + p + " resumed at " + r.offset + ", not an offset of the partition",
                sequenceOf.containsKey(r.offset));
            long resumedAfter = sequenceOf.get(r.offset);
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
            report.append(
                String.format(
                    "partition %d: %s held by %s; committed before kill: offset %s (seq %d);"
                        + " %s resumed after offset %s (seq %d): first processed seq %d, last"
                        + " processed before %d (%d reprocessed)%n",
                    p,
                    victimOrNot(ownersAtKill, p, victim),
                    ownersAtKill.get(p),
                    before,
                    sequenceOf.get(before),
                    r.processor,
                    r.offset,
                    resumedAfter,
                    r.firstSequenceNumber,
                    r.lastBefore,
                    r.lastBefore + 1 - r.firstSequenceNumber));
          }

          // The final checkpoint, read through our checkpoint manager (versions 1 and 2), is the
          // last event's offset string as the hub gave it (a byte position, not the sequence
          // number), and the same in the table.
          FakeHub.Event last = events.get(events.size() - 1);
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
          report.append(
              String.format(
                  "partition %d: final checkpoint v1 = v2 = \"%s\" (last event, seq %d)%n",
                  p, last.offset(), last.sequenceNumber));
        }
        report.append(String.format("took %d ms%n", System.currentTimeMillis() - began));
        System.out.print(report);
      }
    }
    // Kept for a look when the test fails.
    FakeHub.deleteTree(dir);
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
  }

  private static Resume resume(
      Map<String, List<RelayProcessors.Record>> records, Path hubs, int partition, long killedAt)
      throws IOException {
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
    for (String[] line : receivers(hubs, "in", partition)) {
      if (line[1].equals(firstAfter.processor)
          && Long.parseLong(line[0]) > killedAt
          && Long.parseLong(line[0]) <= firstAfter.millis) {
        resume.offset = line[6];
      }
    }
    return resume;
  }

  /** Lines of the receivers log for a partition of an event hub, in order, split in fields. */
  private static List<String[]> receivers(Path hubs, String entityPath, int partition)
      throws IOException {
    List<String[]> out = new ArrayList<>();
    Path log = hubs.resolve(FakeEventHubClient.RECEIVERS_LOG);
    if (!Files.exists(log)) {
      return out;
    }
    for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
      String[] f = line.split(" ");
      if (f.length == 10
          && f[2].equals(NAMESPACE + "/" + entityPath)
          && f[3].equals(String.valueOf(partition))) {
        out.add(f);
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
  private static void await(
      RelayProcessors c, List<String> live, String what, Callable<Boolean> condition)
      throws Exception {
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
   * would: to the given partitions every 50 ms once started.
   */
  private static final class Feeder implements AutoCloseable {
    private final FakeHub hub;
    private final Map<Integer, Integer> next = new HashMap<>();
    private volatile Set<Integer> partitions = new HashSet<>();
    private volatile boolean running = true;
    private final Thread thread;

    Feeder(FakeHub hub) {
      this.hub = hub;
      this.thread = new Thread(this::run, "input-feeder");
      thread.setDaemon(true);
      thread.start();
    }

    synchronized void append(int partition) throws IOException {
      int n = next.merge(partition, 1, Integer::sum) - 1;
      hub.append(
          String.valueOf(partition),
          ("in-" + partition + "-" + n).getBytes(StandardCharsets.UTF_8),
          null,
          null);
    }

    void start(List<Integer> feed) {
      partitions = new HashSet<>(feed);
    }

    private void run() {
      try {
        while (running) {
          for (int p : partitions) {
            append(p);
          }
          Thread.sleep(50);
        }
      } catch (IOException | InterruptedException e) {
        // stopped
      }
    }

    void stop() {
      running = false;
      try {
        thread.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    @Override
    public void close() {
      stop();
    }
  }
}
