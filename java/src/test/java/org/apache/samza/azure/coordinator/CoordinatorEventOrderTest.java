package org.apache.samza.azure.coordinator;

import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.azure.AzureJobCoordinatorFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.coordinator.AzureJobCoordinatorTest.Recorder;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.CountingProxy;
import org.apache.samza.config.Config;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.grouper.stream.GroupByPartition;
import org.apache.samza.container.grouper.stream.SystemStreamPartitionGrouper;
import org.apache.samza.container.grouper.stream.SystemStreamPartitionGrouperFactory;
import org.apache.samza.coordinator.JobCoordinator;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.junit.Test;
import org.slf4j.LoggerFactory;

/**
 * The Java side of the coordinator against events arriving while it is busy: a self-fence must
 * reach the container however long a JobModel computation takes, and a container started after a
 * self-fence must not be allowed to process.
 */
public class CoordinatorEventOrderTest extends AzuriteTest {
  static final CountDownLatch GROUPING = new CountDownLatch(1);
  static volatile CountDownLatch block = new CountDownLatch(0);

  /** Samza's GroupByPartition, held while {@link #block} is not counted down. */
  public static final class BlockingGrouperFactory implements SystemStreamPartitionGrouperFactory {
    @Override
    public SystemStreamPartitionGrouper getSystemStreamPartitionGrouper(Config config) {
      GroupByPartition grouper = new GroupByPartition(config);
      return ssps -> {
        CountDownLatch b = block;
        if (b.getCount() > 0) {
          GROUPING.countDown();
          try {
            b.await();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }
        return grouper.group(ssps);
      };
    }
  }

  /** Storage through proxies the test can hold; fast heartbeats and self-fence (1.5 s). */
  private static Map<String, String> config(String job, CountingProxy blob, CountingProxy table)
      throws Exception {
    Map<String, String> c = AzureJobCoordinatorTest.config(job);
    c.put("azure.storage.connect", Azurite.connectionString(blob.port(), table.port()));
    c.put("job.coordinator.azure.heartbeat.interval.ms", "500");
    c.put("job.coordinator.azure.liveness.timeout.ms", "2000");
    c.put("azure.storage.request.timeout.ms", "1000");
    c.put("azure.storage.retry.deadline.ms", "1000");
    return c;
  }

  private static JobCoordinator coordinator(String id, Map<String, String> config, Recorder r) {
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator(id, new MapConfig(config), new MetricsRegistryMap(), null);
    jc.setListener(r);
    return jc;
  }

  @Test
  public void fenceIsNotDelayedBehindALongCompute() throws Exception {
    try (CountingProxy blob = new CountingProxy(azurite.blobPort);
        CountingProxy table = new CountingProxy(azurite.tablePort)) {
      Map<String, String> config = config("order1", blob, table);
      config.put(
          "job.systemstreampartition.grouper.factory", BlockingGrouperFactory.class.getName());
      Recorder leader = new Recorder();
      JobCoordinator p1 = coordinator("p1", config, leader);
      Recorder follower = new Recorder();
      Map<String, String> direct = AzureJobCoordinatorTest.config("order1");
      direct.put("job.coordinator.azure.heartbeat.interval.ms", "500");
      direct.put("job.coordinator.azure.liveness.timeout.ms", "2000");
      // An attempt must fit before the 1.5 s self-fence (checked at start).
      direct.put("azure.storage.request.timeout.ms", "1000");
      JobCoordinator p2 = coordinator("p2", direct, follower);
      try {
        p1.start();
        Await.until("p1 to run the first version", 30_000, () -> leader.model != null);
        // The next computation (p2 joining) hangs in the grouper, as a slow metadata fetch would.
        block = new CountDownLatch(1);
        p2.start();
        Await.until("p1 to compute with p2", 30_000, () -> GROUPING.getCount() == 0);
        int before = leader.calls.size();
        // p1 loses storage: after 1.5 s its container must process nothing, whatever the event
        // thread is doing.
        blob.hold(true);
        table.hold(true);
        long cut = System.nanoTime();
        Await.until(
            "p1's processing paused by its self-fence while the computation hangs",
            15_000,
            () -> !ProcessingFence.of("p1").mayChoose());
        long pausedMs = (System.nanoTime() - cut) / 1_000_000;
        assertTrue("paused " + pausedMs + " ms after the cut", pausedMs < 1_500 + 500);
        assertFalse(leader.calls.subList(before, leader.calls.size()).contains("expired"));
      } finally {
        block.countDown();
        blob.hold(false);
        table.hold(false);
        p1.stop();
        p2.stop();
        Await.until("stop", 60_000, () -> leader.ended() && follower.ended());
      }
    }
  }

  /**
   * A container started while its processor is paused (no heartbeat got through within the
   * self-fence bound) processes nothing until storage answers again; then, nothing having moved, it
   * resumes without being restarted.
   */
  @Test
  public void containerStartedDuringAPauseWaitsForTheVerdictAndResumes() throws Exception {
    try (CountingProxy blob = new CountingProxy(azurite.blobPort);
        CountingProxy table = new CountingProxy(azurite.tablePort)) {
      Recorder r = new Recorder();
      JobCoordinator p = coordinator("p", config("order2", blob, table), r);
      Logger nativeLog = (Logger) LoggerFactory.getLogger("samza_azure_coordinator");
      ListAppender<ILoggingEvent> appender = new ListAppender<>();
      appender.start();
      nativeLog.addAppender(appender);
      CountDownLatch expiring = new CountDownLatch(1);
      CountDownLatch proceed = new CountDownLatch(1);
      // The event thread is busy when the first version starts (here: the listener's expiry).
      r.onExpired =
          () -> {
            if (expiring.getCount() > 0) {
              expiring.countDown();
              try {
                proceed.await();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            }
          };
      AtomicReference<Boolean> mayProcess = new AtomicReference<>();
      r.onNew =
          () -> {
            Thread t =
                new Thread(
                    () -> mayProcess.set(ProcessingFence.of("p").mayProcess()), "may-process");
            t.setDaemon(true);
            t.start();
          };
      try {
        p.start();
        Await.until("the start of version 1 to reach Java", 30_000, () -> expiring.getCount() == 0);
        // Meanwhile the engine fences itself: the container about to start lost its partitions.
        blob.hold(true);
        table.hold(true);
        Await.until(
            "the native self-fence",
            15_000,
            () ->
                appender.list.stream()
                    .anyMatch(e -> e.getFormattedMessage().contains("self-fence bound")));
        proceed.countDown();
        Await.until("the container to start", 15_000, () -> r.model != null);
        int calls = r.calls.size();
        assertFalse("a paused container chose a message", ProcessingFence.of("p").mayChoose());
        assertNull("a paused container was let process", mayProcess.get());
        // Storage answers again: nothing moved (p is the job's only processor), so it resumes.
        blob.hold(false);
        table.hold(false);
        Await.until("the verdict", 30_000, () -> mayProcess.get() != null);
        assertTrue("the container did not resume", mayProcess.get());
        assertFalse(
            "the container was restarted",
            r.calls.subList(calls, r.calls.size()).contains("expired"));
      } finally {
        proceed.countDown();
        nativeLog.detachAppender(appender);
        blob.hold(false);
        table.hold(false);
        p.stop();
        Await.until("stop", 60_000, r::ended);
      }
    }
  }
}
