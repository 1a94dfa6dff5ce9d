package org.apache.samza.azure.checkpoint;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.testing.Await;
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
      // Each owner has been processing for a while (five commit intervals) before the kill; a
      // message count could be met by a backlog processed in the hold's first half second.
      c.awaitHoldersProcessedFor(1_500, 60_000);
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

  private static void awaitSettled(ProcessorCluster c, List<String> live) throws Exception {
    long since = System.currentTimeMillis();
    Await.until(
        "processors " + live + " to settle",
        60_000,
        () -> {
          try {
            return c.settled(live, since);
          } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
  }
}
