package org.apache.samza.azure.coordinator;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.samza.azure.AzureJobCoordinatorFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.storage.AzureStorageClient;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.config.MapConfig;
import org.apache.samza.coordinator.JobCoordinator;
import org.apache.samza.coordinator.JobCoordinatorListener;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.metrics.Counter;
import org.apache.samza.metrics.Gauge;
import org.apache.samza.metrics.Metric;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.junit.Test;

/** One coordinator in this JVM against Azurite: listener contract, metrics, config, secrets. */
public class AzureJobCoordinatorTest extends AzuriteTest {
  private static final AtomicInteger JOBS = new AtomicInteger();
  private static final String SECRET = "Zm9vYmFyU0VDUkVUdG9rZW4xMjM0NTY3ODkw";

  /** Records every listener call in order. */
  static final class Recorder implements JobCoordinatorListener {
    // Read by the test thread while the coordinator's thread appends.
    final List<String> calls = new CopyOnWriteArrayList<>();
    volatile JobModel model;
    volatile Runnable onNew = () -> {};
    volatile Runnable onExpired = () -> {};

    @Override
    public void onJobModelExpired() {
      calls.add("expired");
      onExpired.run();
    }

    @Override
    public void onNewJobModel(String processorId, JobModel jobModel) {
      // Recorded before the model is visible: tests wait on the model, then read the calls.
      calls.add("new:" + processorId);
      model = jobModel;
      onNew.run();
    }

    @Override
    public void onCoordinatorStop() {
      calls.add("stop");
    }

    @Override
    public void onCoordinatorFailure(Throwable t) {
      calls.add("failure:" + t);
    }

    boolean ended() {
      return calls.contains("stop") || calls.stream().anyMatch(c -> c.startsWith("failure"));
    }
  }

  static Map<String, String> config(String job) throws Exception {
    Path dir = Files.createTempDirectory("samza-azure-jc");
    Files.createDirectories(dir.resolve("input"));
    for (int p = 0; p < 4; p++) {
      Files.write(dir.resolve("input").resolve(String.valueOf(p)), new byte[0]);
    }
    Map<String, String> c = new HashMap<>(azurite.config());
    c.put("job.name", job);
    c.put("systems.fs.samza.factory", "org.apache.samza.azure.testing.job.FileSystemFactory");
    c.put("systems.fs.dir", dir.toString());
    c.put("task.inputs", "fs.input");
    c.put("sensitive.streams.input.eventhubs.sas.token", SECRET);
    c.put("task.chooser.class", "org.apache.samza.azure.FencedChooserFactory");
    return c;
  }

  private static long value(MetricsRegistryMap registry, String name) {
    Metric m = registry.getGroup(CoordinatorMetrics.GROUP).get(name);
    if (m instanceof Counter) {
      return ((Counter) m).getCount();
    }
    return ((Number) ((Gauge<?>) m).getValue()).longValue();
  }

  @Test
  public void leadsPublishesAModelWithoutSecretsAndReportsMetrics() throws Exception {
    String job = "jc" + JOBS.incrementAndGet();
    Map<String, String> config = config(job);
    MetricsRegistryMap registry = new MetricsRegistryMap();
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("solo", new MapConfig(config), registry, null);
    Recorder listener = new Recorder();
    jc.setListener(listener);
    jc.start();
    Await.until("a job model", 30_000, () -> listener.model != null);
    assertEquals("expired comes first", "expired", listener.calls.get(0));
    assertEquals("new:solo", listener.calls.get(1));
    assertEquals(4, listener.model.getContainers().get("solo").getTasks().size());
    assertTrue("model carries no config", listener.model.getConfig().isEmpty());

    // The leader starts its own container before it counts the publish (its notify of the
    // others comes between), so both are awaited.
    Await.until(
        "metrics",
        5_000,
        () -> value(registry, "job-model-version") >= 1 && value(registry, "rebalances") >= 1);
    assertEquals(1, value(registry, "is-leader"));
    assertTrue(value(registry, "storage-requests") > 0);
    assertEquals(0, value(registry, "barrier-timeouts"));
    assertTrue(registry.getGroup(CoordinatorMetrics.GROUP).containsKey("storage-latency-us"));

    // What storage holds: the model, and no secret.
    String[] names = Native.jobStorageNames(job, "1");
    assertEquals(4, names.length);
    assertTrue(names[2], names[2].startsWith("samzacp") && !names[2].equals(names[1]));
    try (AzureStorageClient client = AzureStorageClient.open(azurite.config())) {
      String doc =
          new String(client.readDocument(names[0], "jobmodel").body(), StandardCharsets.UTF_8);
      assertTrue(doc, doc.contains("\"leader\":\"solo\""));
      assertFalse("secret in storage", doc.contains(SECRET));
      assertFalse("account key in storage", doc.contains(Azurite.KEY));
      assertFalse("config in storage", doc.contains("systems.fs.dir"));
    }

    jc.stop();
    jc.stop();
    Await.until("stop", 10_000, listener::ended);
    assertEquals("stop", listener.calls.get(listener.calls.size() - 1));
    assertEquals(1, listener.calls.stream().filter(c -> c.equals("stop")).count());
  }

  @Test
  public void stopFromInsideACallbackEndsWithOneStop() throws Exception {
    Map<String, String> config = config("jc" + JOBS.incrementAndGet());
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("p", new MapConfig(config), new MetricsRegistryMap(), null);
    Recorder listener = new Recorder();
    listener.onNew = jc::stop;
    jc.setListener(listener);
    jc.start();
    Await.until("stop", 30_000, listener::ended);
    List<String> calls = new ArrayList<>(listener.calls);
    assertEquals(calls.toString(), "stop", calls.get(calls.size() - 1));
    assertEquals(calls.toString(), 1, calls.stream().filter(c -> c.equals("stop")).count());
  }

  @Test
  public void stopBeforeStartStillEndsTheListener() {
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator(
                "p", new MapConfig(azurite.config()), new MetricsRegistryMap(), null);
    Recorder listener = new Recorder();
    jc.setListener(listener);
    jc.stop();
    jc.start();
    assertEquals(Collections.singletonList("stop"), listener.calls);
  }

  @Test
  public void badConfigFailsAtStartNamingTheKey() throws Exception {
    Map<String, String> config = config("jc" + JOBS.incrementAndGet());
    config.put("job.coordinator.azure.liveness.timeout.ms", "soon");
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("p", new MapConfig(config), new MetricsRegistryMap(), null);
    jc.setListener(new Recorder());
    try {
      jc.start();
      fail("expected a config error");
    } catch (AzureConfigException e) {
      assertTrue(
          e.getMessage(), e.getMessage().contains("job.coordinator.azure.liveness.timeout.ms"));
      assertTrue(e.getMessage(), e.getMessage().contains("soon"));
    }
  }

  @Test
  public void badPartitionWatchIntervalIsNamed() throws Exception {
    for (String bad : new String[] {"often", "-1"}) {
      Map<String, String> config = config("jc" + JOBS.incrementAndGet());
      config.put(AzureJobCoordinator.PARTITION_WATCH_MS, bad);
      try {
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("p", new MapConfig(config), new MetricsRegistryMap(), null);
        fail("expected a config error for " + bad);
      } catch (AzureConfigException e) {
        assertTrue(e.getMessage(), e.getMessage().contains(AzureJobCoordinator.PARTITION_WATCH_MS));
        assertTrue(e.getMessage(), e.getMessage().contains(bad.replace("-", "")));
      }
    }
    Map<String, String> off = config("jc" + JOBS.incrementAndGet());
    off.put(AzureJobCoordinator.PARTITION_WATCH_MS, "0");
    assertEquals(0, AzureJobCoordinator.partitionWatchMillis(new MapConfig(off)));
  }

  /** Samza's MapConfig.toString() masks only sensitive.* keys, and Samza logs its config. */
  @Test
  public void connectionStringOutsideSensitiveKeysIsWarnedAboutWithoutTheSecret() throws Exception {
    Map<String, String> config = config("jc" + JOBS.incrementAndGet());
    assertTrue(config.containsKey("azure.storage.connect"));
    ch.qos.logback.classic.Logger log =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger(AzureJobCoordinator.class);
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> appender =
        new ch.qos.logback.core.read.ListAppender<>();
    appender.start();
    log.addAppender(appender);
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("p", new MapConfig(config), new MetricsRegistryMap(), null);
    Recorder listener = new Recorder();
    jc.setListener(listener);
    try {
      jc.start();
      List<String> warnings = new ArrayList<>();
      for (ch.qos.logback.classic.spi.ILoggingEvent e : appender.list) {
        String m = e.getFormattedMessage();
        assertFalse("account key logged: " + m, m.contains(Azurite.KEY));
        if (e.getLevel() == ch.qos.logback.classic.Level.WARN) {
          warnings.add(m);
        }
      }
      assertTrue(
          "a warning naming both keys: " + warnings,
          warnings.stream()
              .anyMatch(
                  m ->
                      m.contains("'azure.storage.connect'")
                          && m.contains("sensitive.azure.storage.connect")));
    } finally {
      log.detachAppender(appender);
      jc.stop();
      Await.until("stop", 30_000, listener::ended);
    }
  }

  /** Samza's DiagnosticsManager publishes the raw config, sensitive.* values included. */
  @Test
  public void diagnosticsAreRefusedSinceTheyWouldPublishTheConnectionString() throws Exception {
    Map<String, String> config = config("jc" + JOBS.incrementAndGet());
    config.put("sensitive.azure.storage.connect", config.remove("azure.storage.connect"));
    config.put("job.diagnostics.enabled", "true");
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("p", new MapConfig(config), new MetricsRegistryMap(), null);
    Recorder listener = new Recorder();
    jc.setListener(listener);
    try {
      jc.start();
      fail("expected a config error naming job.diagnostics.enabled");
    } catch (AzureConfigException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("job.diagnostics.enabled"));
      assertFalse(e.getMessage(), e.getMessage().contains(Azurite.KEY));
    } finally {
      jc.stop();
    }
  }

  /** Without our chooser (or with batching, which bypasses it) nothing would fence messages. */
  @Test
  public void startRefusesConfigWithoutTheFencingChooser() throws Exception {
    Map<String, String> none = config("jc" + JOBS.incrementAndGet());
    none.remove("task.chooser.class");
    Map<String, String> batching = config("jc" + JOBS.incrementAndGet());
    batching.put("task.consumer.batch.size", "100");
    String[][] cases = {
      {"task.chooser.class", "FencedChooserFactory"}, {"task.consumer.batch.size", "100"}
    };
    List<Map<String, String>> configs = java.util.Arrays.asList(none, batching);
    for (int i = 0; i < cases.length; i++) {
      JobCoordinator jc =
          new AzureJobCoordinatorFactory()
              .getJobCoordinator(
                  "p", new MapConfig(configs.get(i)), new MetricsRegistryMap(), null);
      jc.setListener(new Recorder());
      try {
        jc.start();
        fail("expected a config error naming " + cases[i][0]);
      } catch (AzureConfigException e) {
        assertTrue(e.getMessage(), e.getMessage().contains(cases[i][0]));
        assertTrue(e.getMessage(), e.getMessage().contains(cases[i][1]));
      } finally {
        jc.stop();
      }
    }
  }
}
