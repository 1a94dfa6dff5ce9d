package org.apache.samza.azure.demo;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.FaithfulProxy;
import org.apache.samza.azure.testing.job.ProcessorCluster;

/**
 * The main job: a real Samza 1.8 job on three processors (three JVMs) coordinated by
 * AzureJobCoordinatorFactory through a local Azurite, consuming a file-based input stream with 8
 * partitions that grows every 50 ms, and committing its offsets every second through
 * AzureCheckpointManagerFactory. Prints the assignment table on every rebalance, kills the leader
 * with kill -9, prints how long the survivors took to run the new model, checks that no partition
 * was held twice and that the leader's partitions resumed from its committed offsets (no offset
 * skipped), and stops everything cleanly.
 *
 * <p>Each processor reaches Azurite through its own endpoint of the Azure-faithful proxy, in the
 * {@code realistic} profile by default (Azure's answers where Azurite differs, 5–50 ms per request,
 * one in 200 stalled 0.5–3 s); {@code -Dsamza.azure.demo.profile=exact} drops the latency.
 */
public final class SamzaJobDemo {
  private static final int PARTITIONS = 8;
  private static final long START = System.currentTimeMillis();
  private static final long SEED = 1;

  private SamzaJobDemo() {}

  private static void say(String what) {
    System.out.printf("[%6.2f s] %s%n", (System.currentTimeMillis() - START) / 1000.0, what);
  }

  /**
   * Prints the table whenever the assignment changes; returns when {@code expected} share all
   * partitions and process messages that arrived after {@code since}.
   */
  private static long watch(ProcessorCluster c, List<String> expected, long since, String[] last)
      throws Exception {
    long deadline = System.currentTimeMillis() + 120_000;
    while (System.currentTimeMillis() < deadline) {
      Map<Integer, List<String>> owners = c.owners();
      String table = c.describe(owners);
      if (!table.isEmpty() && !table.equals(last[0]) && owners.size() == PARTITIONS) {
        say("assignment (processor, partitions):\n" + table.replaceAll("\\s+$", ""));
        last[0] = table;
      }
      if (c.settled(expected, since)) {
        return System.currentTimeMillis() - since;
      }
      Thread.sleep(20);
    }
    throw new IllegalStateException("no agreed assignment within 120 s");
  }

  public static void main(String[] args) throws Exception {
    String profile = System.getProperty("samza.azure.demo.profile", "realistic");
    say("starting Azurite on free loopback ports ...");
    try (Azurite azurite = Azurite.start()) {
      say(
          "starting the Azure-faithful proxy in front of it: one endpoint per processor, profile "
              + profile
              + ", seed "
              + SEED);
      Path dir = Files.createTempDirectory("samza-azure-demo");
      Map<String, String> config = new HashMap<>(azurite.config());
      config.put("job.name", "demo");
      config.put("task.checkpoint.factory", AzureCheckpointManagerFactory.class.getName());
      config.put("task.commit.ms", "1000");
      List<String> jvmArgs =
          new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.demo.jvmargs").split(" ")));
      try (FaithfulProxy proxy = FaithfulProxy.start(azurite, 3, SEED, profile);
          ProcessorCluster c =
              new ProcessorCluster(
                  dir,
                  config,
                  PARTITIONS,
                  jvmArgs,
                  System.getProperty("samza.azure.demo.classpath"),
                  proxy)) {
        List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));
        say(
            "starting Samza processors "
                + live
                + " (one JVM each), job 'demo', "
                + PARTITIONS
                + " input partitions; logs in "
                + dir);
        long t0 = System.currentTimeMillis();
        for (String id : live) {
          c.start(id);
        }
        String[] last = {""};
        long took = watch(c, live, t0, last);
        say(
            String.format(
                "all %d partitions processed by %s, %.1f s after the JVMs were launched",
                PARTITIONS, live, took / 1000.0));
        // Long enough for a few commits (one a second) before the kill.
        c.awaitHoldersProcessedFor(3_000, 60_000);

        String leader = c.leader();
        say("kill -9 " + leader + " (the leader) ...");
        long killed = System.currentTimeMillis();
        c.kill(leader);
        live.remove(leader);
        took = watch(c, live, killed, last);
        say(
            String.format(
                "FAILOVER: %s run the new model and process every partition %.1f s after the kill"
                    + " (new leader: %s)",
                live, took / 1000.0, c.leader()));

        List<String> overlaps = c.overlaps();
        say(
            overlaps.isEmpty()
                ? "checked: no partition was ever held by two processors at once"
                : "OVERLAPS: " + overlaps);
        for (String id : live) {
          say("stopping " + id + " gracefully (SIGTERM) ...");
          c.stop(id);
        }
        say(
            "stopped; "
                + c.holds().stream().mapToLong(h -> h.messages).sum()
                + " messages were processed in all");
        Map<Integer, List<Long>> skipped = c.skippedOffsets();
        skipped.values().removeIf(List::isEmpty);
        say(
            skipped.isEmpty()
                ? "checked: every partition was processed from its first offset to its last with"
                    + " none skipped (the killed leader's partitions resumed from its checkpoints)"
                : "SKIPPED OFFSETS (partition -> offsets): " + skipped);
        if (!overlaps.isEmpty() || !skipped.isEmpty()) {
          System.exit(1);
        }
      }
    }
  }
}
