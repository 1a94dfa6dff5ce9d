package org.apache.samza.azure.checkpoint;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.Partition;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.CountingProxy;
import org.apache.samza.checkpoint.CheckpointV1;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.apache.samza.system.SystemStreamPartition;
import org.junit.Test;

/**
 * Our checkpoint manager, through Samza's API, with its storage cut by a proxy in front of a real
 * Azurite: a container's start and its commits wait out an outage (Samza ends the container, and so
 * the processor, when either fails), and give up at once when the container is being stopped.
 */
public class AzureCheckpointManagerOutageTest extends AzuriteTest {
  private static final AtomicInteger JOBS = new AtomicInteger();
  private static final TaskName TASK = new TaskName("Partition 0");

  /** Longer than the storage retry deadline (5 s), after which a single operation gives up. */
  private static final long OUTAGE_MS = 7000;

  private static Map<String, String> config(String job, String processor, CountingProxy[] p) {
    Map<String, String> c = new HashMap<>();
    c.put("azure.storage.connect", Azurite.connectionString(p[0].port(), p[1].port()));
    c.put("job.name", job);
    c.put("processor.id", processor);
    return c;
  }

  private static CountingProxy[] proxies() throws Exception {
    return new CountingProxy[] {
      new CountingProxy(azurite.blobPort), new CountingProxy(azurite.tablePort)
    };
  }

  private static CheckpointV1 offsets(String offset) {
    Map<SystemStreamPartition, String> m = new HashMap<>();
    m.put(new SystemStreamPartition("fs", "input", new Partition(0)), offset);
    return new CheckpointV1(m);
  }

  /** Runs {@code body} on a thread of its own; its failure, if any, lands in the reference. */
  private static Thread run(String name, AtomicReference<Throwable> failed, Runnable body) {
    Thread t =
        new Thread(
            () -> {
              try {
                body.run();
              } catch (Throwable e) {
                failed.set(e);
              }
            },
            name);
    t.setDaemon(true);
    t.start();
    return t;
  }

  @Test
  public void aContainerStartWaitsOutAStorageOutage() throws Exception {
    CountingProxy[] p = proxies();
    try {
      String job = "cpout" + JOBS.incrementAndGet();
      AzureCheckpointManager m =
          new AzureCheckpointManager(
              new MapConfig(config(job, "p1", p)), new MetricsRegistryMap(), () -> 1);
      m.register(TASK);
      p[1].refuse();
      AtomicReference<Throwable> failed = new AtomicReference<>();
      Thread start = run("start", failed, m::start);
      start.join(OUTAGE_MS);
      assertNull("start failed during the outage: " + failed.get(), failed.get());
      assertTrue("start returned while storage refused every connection", start.isAlive());
      p[1].restore();
      start.join(30_000);
      assertNull("start failed: " + failed.get(), failed.get());
      assertTrue("start still waiting 30 s after storage returned", !start.isAlive());
      assertNull(m.readLastCheckpoint(TASK));
      m.writeCheckpoint(TASK, offsets("7"));
      m.stop();
    } finally {
      p[0].close();
      p[1].close();
    }
  }

  @Test
  public void aCommitWaitsOutAStorageOutageWhileTheTaskIsOurs() throws Exception {
    CountingProxy[] p = proxies();
    try {
      String job = "cpout" + JOBS.incrementAndGet();
      AzureCheckpointManager m =
          new AzureCheckpointManager(
              new MapConfig(config(job, "p1", p)), new MetricsRegistryMap(), () -> 1);
      m.register(TASK);
      m.start();
      m.writeCheckpoint(TASK, offsets("1"));
      p[1].refuse();
      AtomicReference<Throwable> failed = new AtomicReference<>();
      Thread commit = run("commit", failed, () -> m.writeCheckpoint(TASK, offsets("2")));
      commit.join(OUTAGE_MS);
      assertNull("the commit failed during the outage: " + failed.get(), failed.get());
      assertTrue("the commit returned while storage refused every connection", commit.isAlive());
      p[1].restore();
      commit.join(30_000);
      assertNull("the commit failed: " + failed.get(), failed.get());
      assertTrue("the commit still waiting 30 s after storage returned", !commit.isAlive());
      m.stop();

      AzureCheckpointManager next =
          new AzureCheckpointManager(
              new MapConfig(config(job, "p2", p)), new MetricsRegistryMap(), () -> 2);
      next.register(TASK);
      next.start();
      assertEquals(offsets("2"), next.readLastCheckpoint(TASK));
      next.stop();
    } finally {
      p[0].close();
      p[1].close();
    }
  }

  /**
   * A commit hanging on storage that does not answer gives up as soon as the container is being
   * stopped, so the container stops within task.shutdown.ms; and a container stopped while its
   * checkpoint manager starts ends as stopped (interrupted), which Samza does not count as a
   * failure.
   */
  @Test
  public void aStoppingContainersCheckpointsGiveUpAtOnce() throws Exception {
    CountingProxy[] p = proxies();
    try {
      String job = "cpout" + JOBS.incrementAndGet();
      String processor = "stopping-" + job;
      AzureCheckpointManager m =
          new AzureCheckpointManager(
              new MapConfig(config(job, processor, p)), new MetricsRegistryMap(), () -> 1);
      m.register(TASK);
      m.start();
      p[1].silence();
      AtomicReference<Throwable> failed = new AtomicReference<>();
      Thread commit = run("commit", failed, () -> m.writeCheckpoint(TASK, offsets("3")));
      commit.join(1000);
      assertTrue("the commit returned while storage was silent", commit.isAlive());
      long t0 = System.nanoTime();
      ContainerStops.stopping(processor, "test: the coordinator fenced");
      commit.join(2000);
      long tookMs = (System.nanoTime() - t0) / 1_000_000;
      assertTrue("the commit did not give up within 2 s of the stop", !commit.isAlive());
      assertNotNull(failed.get());
      assertTrue(String.valueOf(failed.get()), failed.get().getMessage().contains("fenced"));
      assertTrue("took " + tookMs + " ms", tookMs < 1000);
      m.stop();

      // A manager created before the stop, started after it: its start ends at once, as an
      // interrupt (how Samza stops a container that is still starting).
      AzureCheckpointManager late =
          new AzureCheckpointManager(
              new MapConfig(config(job, processor, p)), new MetricsRegistryMap(), () -> 2);
      late.register(TASK);
      ContainerStops.stopping(processor, "test: a new job model");
      AtomicReference<Throwable> startFailed = new AtomicReference<>();
      Thread start = run("start", startFailed, late::start);
      start.join(2000);
      assertTrue("start did not give up", !start.isAlive());
      assertTrue(
          String.valueOf(startFailed.get()), startFailed.get() instanceof InterruptedException);
      late.stop();
    } finally {
      p[0].close();
      p[1].close();
    }
  }
}
