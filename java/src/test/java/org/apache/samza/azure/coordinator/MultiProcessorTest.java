package org.apache.samza.azure.coordinator;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.FaithfulProxy;
import org.apache.samza.azure.testing.job.HighLevelProcessorMain;
import org.apache.samza.azure.testing.job.OwnershipLog;
import org.apache.samza.azure.testing.job.ProcessorCluster;
import org.junit.Test;

/**
 * Real Samza 1.8 processors, one JVM each, coordinated by our factory through a real Azurite,
 * consuming a real (file-based) Samza input system. Every step ends with each partition owned by
 * exactly one live processor that is processing messages, and no partition is ever held by two
 * processors at overlapping times.
 *
 * <p>Each processor reaches Azurite through its own endpoint of the Azure-faithful proxy, in the
 * {@code exact} profile (Azure's answers, no latency) unless {@code samza.azure.test.profile} says
 * otherwise; the lifecycle also runs in the {@code realistic} profile (5–50 ms per request, one in
 * 200 stalled 0.5–3 s) with a fixed seed.
 */
public class MultiProcessorTest extends AzuriteTest {
  private static final int PARTITIONS = 8;
  private static final String PROFILE = System.getProperty("samza.azure.test.profile", "exact");
  private static final long SEED = 10;

  private static ProcessorCluster cluster(String job, int processors) throws Exception {
    return cluster(job, processors, PROFILE, new HashMap<>());
  }

  private static ProcessorCluster cluster(
      String job, int processors, String profile, Map<String, String> extra) throws Exception {
    Path dir = Files.createTempDirectory("samza-azure-cluster");
    Map<String, String> config = new HashMap<>(azurite.config());
    config.putAll(extra);
    config.put("job.name", job);
    // Samza's default is 5 minutes; the leader checks the inputs' partition counts every second.
    config.put(AzureJobCoordinator.PARTITION_WATCH_MS, "1000");
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
    FaithfulProxy proxy = FaithfulProxy.start(azurite, processors, SEED, profile);
    try {
      return new ProcessorCluster(
          dir,
          config,
          PARTITIONS,
          jvmArgs,
          System.getProperty("samza.azure.test.classpath"),
          proxy);
    } catch (Exception e) {
      proxy.close();
      throw e;
    }
  }

  private static void awaitSettled(ProcessorCluster c, String step, List<String> expected)
      throws Exception {
    long since = System.currentTimeMillis();
    try {
      Await.until(step, 60_000, () -> check(c, expected, since));
      System.out.printf(
          "%s: settled in %d ms%n%s", step, System.currentTimeMillis() - since, c.describe());
    } catch (AssertionError e) {
      StringBuilder sb = new StringBuilder(e.getMessage()).append("\nholds: ").append(c.holds());
      for (String id : expected) {
        sb.append("\n--- ").append(id).append(" ---\n").append(c.tail(id, 30));
      }
      throw new AssertionError(sb.toString());
    }
    assertEquals("overlapping holds after " + step, new ArrayList<String>(), c.overlaps());
  }

  private static boolean check(ProcessorCluster c, List<String> expected, long since) {
    try {
      return c.settled(expected, since);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Test
  public void joinGracefulStopFollowerCrashAndLeaderCrash() throws Exception {
    lifecycle("lifecycle", PROFILE);
  }

  /** The same lifecycle with every storage request delayed as Azure's would be, and rare stalls. */
  @Test
  public void joinGracefulStopFollowerCrashAndLeaderCrashWithRealisticLatency() throws Exception {
    lifecycle("lifecyclerealistic", "realistic");
  }

  private static void lifecycle(String job, String profile) throws Exception {
    try (ProcessorCluster c = cluster(job, 4, profile, new HashMap<>())) {
      for (String id : Arrays.asList("p1", "p2", "p3")) {
        c.start(id);
      }
      awaitSettled(c, "3 processors sharing 8 partitions", Arrays.asList("p1", "p2", "p3"));

      c.start("p4");
      awaitSettled(c, "p4 joining", Arrays.asList("p1", "p2", "p3", "p4"));

      // The leader notices the 9th partition and hands it out; settled() wants all 9 owned.
      c.addPartition();
      awaitSettled(c, "an input partition added", Arrays.asList("p1", "p2", "p3", "p4"));

      String leader = c.leader();
      assertNotNull("one processor leads", leader);
      List<String> live = new ArrayList<>(Arrays.asList("p1", "p2", "p3", "p4"));
      String follower = live.stream().filter(p -> !p.equals(leader)).findFirst().get();
      int code = c.stop(follower);
      // 143: the JVM's exit status after SIGTERM once its shutdown hooks finished.
      assertTrue("exit status " + code, code == 0 || code == 143);
      String out = c.tail(follower, 200);
      assertTrue(out, out.contains("left the group") && out.contains("Coordinator of processor"));
      live.remove(follower);
      awaitSettled(c, "graceful stop of " + follower, live);

      String crashed = live.stream().filter(p -> !p.equals(leader)).findFirst().get();
      c.kill(crashed);
      live.remove(crashed);
      awaitSettled(c, "kill -9 of follower " + crashed, live);

      c.kill(leader);
      live.remove(leader);
      awaitSettled(c, "kill -9 of leader " + leader, live);
      String next = c.leader();
      assertNotNull("a new leader", next);
      assertNotEquals(leader, next);
      assertTrue(c.overlaps().isEmpty());
      for (String id : Arrays.asList("p1", "p2", "p3", "p4")) {
        assertTrue(id + " talked to storage through its own proxy endpoint", c.requests(id) > 0);
      }
    }
  }

  /**
   * A fault on one processor's own proxy endpoint: a follower cut off from storage (connections
   * refused) for 15 s, longer than the 6 s liveness timeout, fences itself, the others take its
   * partitions, and it rejoins when storage answers again; nobody exits, nothing is held twice.
   */
  @Test
  public void aFollowerCutOffFromStorageFor15SecondsLosesItsPartitionsAndRejoins()
      throws Exception {
    try (ProcessorCluster c = cluster("cutoff", 3)) {
      List<String> all = Arrays.asList("p1", "p2", "p3");
      for (String id : all) {
        c.start(id);
      }
      awaitSettled(c, "3 processors", all);
      String leader = c.leader();
      assertNotNull(leader);
      String cut = all.stream().filter(p -> !p.equals(leader)).findFirst().get();
      List<String> others = new ArrayList<>(all);
      others.remove(cut);

      long before = c.requests(leader);
      c.outage(cut, "refuse", 15_000);
      awaitSettled(c, "storage outage of " + cut, others);
      assertTrue("the others still reach storage", c.requests(leader) > before);
      awaitSettled(c, "the end of " + cut + "'s outage", all);
      for (String id : all) {
        assertTrue(id + " is still running", c.isRunning(id));
      }
    }
  }

  @Test
  public void leaderStoppedPastItsLeaseStepsDownAndProcessesNothingOnWaking() throws Exception {
    try (ProcessorCluster c = cluster("sigstop", 3)) {
      for (String id : Arrays.asList("p1", "p2", "p3")) {
        c.start(id);
      }
      awaitSettled(c, "3 processors", Arrays.asList("p1", "p2", "p3"));
      String leader = c.leader();
      assertNotNull(leader);
      List<String> others = new ArrayList<>(Arrays.asList("p1", "p2", "p3"));
      others.remove(leader);

      long stoppedAt = System.currentTimeMillis();
      c.signal(leader, "STOP");
      awaitSettled(c, "SIGSTOP of leader " + leader, others);
      // Past the 15 s lease, so it would have lapsed even without the take-over.
      Await.until(
          "the lease duration to pass",
          30_000,
          () -> System.currentTimeMillis() - stoppedAt > 16_000);
      int before = c.output(leader).size();
      c.signal(leader, "CONT");
      awaitSettled(c, "SIGCONT of " + leader, Arrays.asList("p1", "p2", "p3"));
      List<String> after = c.output(leader);
      String out = String.join("\n", after.subList(before, after.size()));
      assertTrue(out, out.contains("Processor " + leader + " is no longer the leader"));
      assertTrue(out, out.contains("lost contact with storage"));
      // Its local lease bound had run out, so it did not even try a leader write.
      assertTrue(out, !out.contains("published job model") && !out.contains("computing job model"));
      System.out.println("holds after SIGCONT: " + c.holds());
    }
  }

  /**
   * The processing fence holds for a high-level application on a multi-threaded container, run by
   * Samza's StreamProcessor directly (no runner of ours wraps its tasks): frozen past its fence
   * deadline, the leader's container processes nothing after SIGCONT, though the file consumer had
   * buffered messages for it all along.
   */
  @Test
  public void highLevelAppOnStreamProcessorProcessesNothingAfterItsFence() throws Exception {
    Map<String, String> extra = new HashMap<>();
    extra.put("job.container.thread.pool.size", "2");
    // What a custom runner's config must say (AzureApplicationRunner sets it itself).
    extra.put("task.chooser.class", "org.apache.samza.azure.FencedChooserFactory");
    try (ProcessorCluster c = cluster("highlevel", 3, PROFILE, extra)) {
      List<String> all = Arrays.asList("p1", "p2", "p3");
      for (String id : all) {
        c.start(id, HighLevelProcessorMain.class);
      }
      awaitSettled(c, "3 high-level processors", all);
      String leader = c.leader();
      assertNotNull(leader);
      List<String> others = new ArrayList<>(all);
      others.remove(leader);

      long stoppedAt = System.currentTimeMillis();
      c.signal(leader, "STOP");
      awaitSettled(c, "SIGSTOP of leader " + leader, others);
      // Well past the 5 s fence deadline (and the 15 s lease), as in a long GC pause.
      Await.until(
          "the lease duration to pass",
          30_000,
          () -> System.currentTimeMillis() - stoppedAt > 16_000);
      c.signal(leader, "CONT");
      long since = System.currentTimeMillis();
      Await.until("SIGCONT of " + leader, 60_000, () -> check(c, all, since));
      List<OwnershipLog.Hold> resumed = new ArrayList<>();
      for (OwnershipLog.Hold h : c.holds()) {
        if (h.afterPause && h.messages > 0) {
          resumed.add(h);
        }
      }
      assertEquals(
          "messages processed by " + leader + "'s old container after its fence deadline",
          new ArrayList<OwnershipLog.Hold>(),
          resumed);
      assertEquals("overlapping holds", new ArrayList<String>(), c.overlaps());
    }
  }
}
