package org.apache.samza.azure.checkpoint;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import com.microsoft.azure.storage.CloudStorageAccount;
import com.microsoft.azure.storage.table.CloudTable;
import com.microsoft.azure.storage.table.DynamicTableEntity;
import com.microsoft.azure.storage.table.EntityProperty;
import com.microsoft.azure.storage.table.TableOperation;
import com.microsoft.azure.storage.table.TableQuery;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.CountingProxy;
import org.apache.samza.azure.testing.FaithfulProxy;
import org.apache.samza.azure.testing.job.ProcessorCluster;
import org.junit.Test;

/**
 * Real Samza 1.8 processors (one JVM each) under our coordinator, committing offsets through our
 * checkpoint manager. After kill -9 of a processor, whoever takes its partitions resumes from their
 * last committed offsets: across all processors, every partition's processed offsets have no gap.
 * (Without checkpoints the new owner would start at "upcoming" and skip what arrived in between.)
 */
public class CheckpointedJobTest extends AzuriteTest {
  private static final int PARTITIONS = 6;

  @Test
  public void aKilledProcessorsPartitionsResumeFromTheirCommittedOffsets() throws Exception {
    Path dir = Files.createTempDirectory("samza-azure-checkpointed");
    Map<String, String> config = new HashMap<>(azurite.config());
    config.put("job.name", "checkpointed");
    config.put("task.checkpoint.factory", AzureCheckpointManagerFactory.class.getName());
    config.put("task.commit.ms", "300");
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
    // Each processor through its own endpoint of the Azure-faithful proxy.
    String profile = System.getProperty("samza.azure.test.profile", "exact");
    try (FaithfulProxy proxy = FaithfulProxy.start(azurite, 3, 11, profile);
        ProcessorCluster c =
            new ProcessorCluster(
                dir,
                config,
                PARTITIONS,
                jvmArgs,
                System.getProperty("samza.azure.test.classpath"),
                proxy)) {
      List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));
      for (String id : live) {
        c.start(id);
      }
      awaitSettled(c, live);
      for (String id : live) {
        String out = c.tail(id, 400);
        assertTrue(out, out.contains("Checkpoints of") && out.contains("job model version"));
      }
      // Each owner has been processing for a while (several commit intervals) before the kill.
      c.awaitHoldersProcessed(40, 60_000);
      // A backlog can make those 40 messages take less than one commit interval: p1's
      // partitions must have committed offsets, or their next owner rightly starts at
      // "upcoming".
      awaitCommitted("checkpointed", "p1", PARTITIONS / 3);
      c.kill("p1");
      live.remove("p1");
      awaitSettled(c, live);
      c.stop("p2");
      live.remove("p2");
      awaitSettled(c, live);

      Map<Integer, List<Long>> skipped = c.skippedOffsets();
      assertEquals(PARTITIONS, skipped.size());
      for (Map.Entry<Integer, List<Long>> e : skipped.entrySet()) {
        assertEquals(
            "partition " + e.getKey() + " skipped offsets (holds: " + c.holds() + ")",
            new ArrayList<Long>(),
            e.getValue());
      }
      assertEquals(new ArrayList<String>(), c.overlaps());
    }
  }

  private static Map<String, String> jobConfig(String job) {
    Map<String, String> config = new HashMap<>(azurite.config());
    config.put("job.name", job);
    config.put("task.checkpoint.factory", AzureCheckpointManagerFactory.class.getName());
    config.put("task.commit.ms", "300");
    return config;
  }

  private static ProcessorCluster cluster(Map<String, String> config, int partitions)
      throws Exception {
    Path dir = Files.createTempDirectory("samza-azure-checkpointed");
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
    return new ProcessorCluster(
        dir, config, partitions, jvmArgs, System.getProperty("samza.azure.test.classpath"));
  }

  /** Blob and table proxies in front of Azurite, for one processor's storage alone. */
  private static CountingProxy[] proxies() throws Exception {
    return new CountingProxy[] {
      new CountingProxy(azurite.blobPort), new CountingProxy(azurite.tablePort)
    };
  }

  private static Map<String, String> through(CountingProxy[] p) {
    Map<String, String> c = new HashMap<>();
    c.put("azure.storage.connect", Azurite.connectionString(p[0].port(), p[1].port()));
    return c;
  }

  /** Awaits the line in the processor's output; fails at once, with its output, if it exits. */
  private static void awaitOutput(ProcessorCluster c, String id, String line, long boundMillis)
      throws Exception {
    Await.until(
        id + " to log '" + line + "'",
        boundMillis,
        () -> {
          try {
            assertRunning(c, id);
            return c.output(id).stream().anyMatch(l -> l.contains(line));
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        });
  }

  private static void assertRunning(ProcessorCluster c, String id) throws IOException {
    Integer status = c.exitStatus(id);
    if (status != null) {
      throw new AssertionError(id + " exited with status " + status + ":\n" + c.tail(id, 80));
    }
  }

  /**
   * Three processors; p3's storage goes through proxies of its own, and {@code cut} cuts it for
   * {@code outageMs}. p3 must fence itself (stopping its container within {@code task.shutdown.ms}
   * = 5 s, its commits giving up), stay alive, and rejoin when storage returns; no partition has
   * two owners at once and none skips an offset.
   */
  private static void cutOneProcessorsStorage(String job, boolean silent, long outageMs)
      throws Exception {
    CountingProxy[] p3 = proxies();
    try (ProcessorCluster c = cluster(jobConfig(job), PARTITIONS)) {
      List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));
      c.start("p1");
      c.start("p2");
      Map<String, String> own = through(p3);
      own.put("task.shutdown.ms", "5000");
      c.start("p3", own);
      awaitSettled(c, live);
      // p3's partitions have checkpoints to resume from (without one, the next owner starts at
      // "upcoming", skipping what p3 had not processed).
      awaitCommitted(job, "p3", PARTITIONS / 3);

      long cutAt = System.nanoTime();
      c.outageBegan("p3");
      if (silent) {
        p3[0].silence();
        p3[1].silence();
      } else {
        p3[0].refuse();
        p3[1].refuse();
      }
      // The self-fence (5 s after the last heartbeat) pauses p3's processing; its container is
      // kept while its commits cannot reach storage. The others take its partitions meanwhile.
      Await.until(
          "p1 and p2 to run p3's partitions",
          outageMs + 10_000,
          () -> {
            try {
              assertRunning(c, "p3");
              return c.settled(Arrays.asList("p1", "p2"), 0);
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
      long left = outageMs - (System.nanoTime() - cutAt) / 1_000_000;
      if (left > 0) {
        Thread.sleep(left); // the outage's length, not a wait for something to happen
      }
      assertRunning(c, "p3");
      p3[0].restore();
      p3[1].restore();
      // Storage answers: p3 learns that it was replaced and stops its container at once, within
      // task.shutdown.ms although its commits waited for storage, and stays alive. Either its
      // coordinator tells it first (a fence), or a commit that waited finds the task owned by
      // another and the container fails; the runner then starts p3 afresh.
      Await.until(
          "p3 to stop its container: fenced, or failed on a commit and rejoining",
          10_000,
          () -> {
            try {
              assertRunning(c, "p3");
              return c.output("p3").stream()
                  .anyMatch(
                      l ->
                          l.contains("lost contact with storage")
                              || l.contains("rejoins as a fresh processor"));
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
      Await.until(
          "p3's container to stop (its tasks closed)",
          10_000,
          () -> {
            try {
              assertRunning(c, "p3");
              return c.holds().stream()
                  .noneMatch(h -> h.processor.equals("p3") && h.end == Long.MAX_VALUE);
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });

      long since = System.currentTimeMillis();
      Await.until(
          "p1, p2 and p3 to settle after p3's storage returned",
          60_000,
          () -> {
            try {
              assertRunning(c, "p3");
              return c.settled(live, since);
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
      assertEquals(new ArrayList<String>(), c.overlaps());
      for (Map.Entry<Integer, List<Long>> e : c.skippedOffsets().entrySet()) {
        assertEquals("partition " + e.getKey(), new ArrayList<Long>(), e.getValue());
      }
    } finally {
      p3[0].close();
      p3[1].close();
    }
  }

  /** Awaits {@code tasks} tasks owned by {@code processor} with a committed offset. */
  private static void awaitCommitted(String job, String processor, int tasks) throws Exception {
    CloudTable table =
        CloudStorageAccount.parse(azurite.connectionString())
            .createCloudTableClient()
            .getTableReference(Native.jobStorageNames(job, "1")[2]);
    TableQuery<DynamicTableEntity> rows =
        TableQuery.from(DynamicTableEntity.class)
            .where(
                TableQuery.generateFilterCondition(
                    "PartitionKey", TableQuery.QueryComparisons.EQUAL, "tasks"));
    Await.until(
        processor + "'s " + tasks + " tasks to have committed checkpoints",
        30_000,
        () -> {
          int committed = 0;
          for (DynamicTableEntity e : table.execute(rows)) {
            EntityProperty owner = e.getProperties().get("processor");
            EntityProperty v1 = e.getProperties().get("v1c0");
            // A commit made before the task processed anything holds no offset.
            if (e.getRowKey().endsWith("|owner")
                && owner != null
                && processor.equals(owner.getValueAsString())
                && v1 != null
                && v1.getValueAsString().contains("offset")) {
              committed++;
            }
          }
          return committed >= tasks;
        });
  }

  /**
   * A 10 s outage with connections refused, for one processor: its commits wait instead of failing
   * (Samza ends the container on a failed commit), the self-fence stops its container, and it
   * rejoins when storage returns.
   */
  @Test
  public void aProcessorWhoseStorageRefusesConnectionsFor10sStaysAliveAndRejoins()
      throws Exception {
    cutOneProcessorsStorage("refused", false, 10_000);
  }

  /**
   * A silent outage (nothing answers) with task.shutdown.ms=5000: the self-fence must stop the
   * container within those 5 s although a commit hangs on storage.
   */
  @Test
  public void aProcessorWhoseStorageFallsSilentStopsItsContainerInTimeAndRejoins()
      throws Exception {
    cutOneProcessorsStorage("silent", true, 12_000);
  }

  /**
   * A container whose checkpoint claim is refused (a newer generation owns one of its tasks, as
   * when a processor paused while its container started wakes after a rebalance) fails, and Samza
   * ends its StreamProcessor; the runner must start a fresh processor that rejoins, not exit.
   */
  @Test
  public void aRefusedCheckpointClaimMakesTheProcessorRejoinNotExit() throws Exception {
    String job = "claimrefused";
    CloudTable table =
        CloudStorageAccount.parse(azurite.connectionString())
            .createCloudTableClient()
            .getTableReference(Native.jobStorageNames(job, "1")[2]);
    try (ProcessorCluster c = cluster(jobConfig(job), 2)) {
      c.start("p1");
      awaitSettled(c, Arrays.asList("p1"));
      // Another owner takes a task over at a newer generation (as after a rebalance p1 slept
      // through; planted here, since a job's first version is numbered above every
      // generation already in the table): p1's next commit of it, and every claim of it
      // after, are refused.
      DynamicTableEntity intruder = new DynamicTableEntity("tasks", "Partition 0|owner");
      intruder.getProperties().put("processor", new EntityProperty("intruder"));
      intruder.getProperties().put("generation", new EntityProperty("1000000"));
      table.execute(TableOperation.insertOrReplace(intruder));
      awaitOutput(c, "p1", "rejoins as a fresh processor", 40_000);
      // The task is free again: the next rejoin takes it.
      table.execute(
          TableOperation.delete(
              table
                  .execute(
                      TableOperation.retrieve(
                          "tasks", "Partition 0|owner", DynamicTableEntity.class))
                  .<DynamicTableEntity>getResultAsType()));
      long since = System.currentTimeMillis();
      Await.until(
          "p1 to rejoin and process both partitions",
          40_000,
          () -> {
            try {
              assertRunning(c, "p1");
              return c.settled(Arrays.asList("p1"), since);
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
      String out = String.join("\n", c.output("p1"));
      assertTrue(out, out.contains("FencedWriteException") && out.contains("intruder"));
    }
  }

  private static void awaitSettled(ProcessorCluster c, List<String> live) throws Exception {
    long since = System.currentTimeMillis();
    Await.until(
        "processors " + live + " to settle",
        60_000,
        () -> {
          try {
            return c.settled(live, since);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        });
  }
}
