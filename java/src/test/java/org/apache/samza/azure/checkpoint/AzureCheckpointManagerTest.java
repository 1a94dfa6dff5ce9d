package org.apache.samza.azure.checkpoint;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.microsoft.azure.storage.CloudStorageAccount;
import com.microsoft.azure.storage.table.CloudTable;
import com.microsoft.azure.storage.table.DynamicTableEntity;
import com.microsoft.azure.storage.table.EntityProperty;
import com.microsoft.azure.storage.table.TableOperation;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.samza.Partition;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.errors.FencedWriteException;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.checkpoint.CheckpointId;
import org.apache.samza.checkpoint.CheckpointV1;
import org.apache.samza.checkpoint.CheckpointV2;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.metrics.Counter;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.apache.samza.system.SystemStreamPartition;
import org.junit.Test;

/** Our checkpoint manager, driven through Samza's API against a real Azurite. */
public class AzureCheckpointManagerTest extends AzuriteTest {
  private static final AtomicInteger JOBS = new AtomicInteger();
  private static final TaskName TASK = new TaskName("Partition 0");

  private static Map<String, String> config(String job, String processor) {
    Map<String, String> c = new HashMap<>(azurite.config());
    c.put("job.name", job);
    c.put("processor.id", processor);
    return c;
  }

  private static AzureCheckpointManager manager(
      Map<String, String> config, long generation, MetricsRegistryMap registry) {
    AzureCheckpointManager m =
        new AzureCheckpointManager(new MapConfig(config), registry, () -> generation);
    m.register(TASK);
    m.createResources();
    m.start();
    return m;
  }

  private static Map<SystemStreamPartition, String> offsets(String... kv) {
    Map<SystemStreamPartition, String> m = new HashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put(new SystemStreamPartition("eventhubs", kv[i], new Partition(0)), kv[i + 1]);
    }
    return m;
  }

  private static long count(MetricsRegistryMap r, String name) {
    return ((Counter) r.getGroup(CheckpointMetrics.GROUP).get(name)).getCount();
  }

  @Test
  public void writesBothVersionsAndReadsThemBackByReadVersions() {
    String job = "cp" + JOBS.incrementAndGet();
    MetricsRegistryMap registry = new MetricsRegistryMap();
    AzureCheckpointManager writer = manager(config(job, "p1"), 3, registry);
    assertNull("no checkpoint yet", writer.readLastCheckpoint(TASK));

    // Samza's default task.checkpoint.write.versions=1,2 writes both, in turn.
    CheckpointV1 one = new CheckpointV1(offsets("orders", "-1", "refunds", "17"));
    Map<String, Map<String, String>> markers = new HashMap<>();
    markers.put("factory", new HashMap<>());
    markers.get("factory").put("store", "marker");
    CheckpointV2 two =
        new CheckpointV2(CheckpointId.create(), offsets("orders", "-2", "refunds", "18"), markers);
    writer.writeCheckpoint(TASK, one);
    writer.writeCheckpoint(TASK, two);
    assertEquals(2, count(registry, "checkpoint-writes"));
    writer.stop();

    // Default read versions ("1"): the V1.
    AzureCheckpointManager reader = manager(config(job, "p2"), 4, new MetricsRegistryMap());
    assertEquals(one, reader.readLastCheckpoint(TASK));
    reader.stop();

    Map<String, String> v2First = config(job, "p3");
    v2First.put("task.checkpoint.read.versions", "2,1");
    AzureCheckpointManager reader2 = manager(v2First, 5, new MetricsRegistryMap());
    Checkpoint read = reader2.readLastCheckpoint(TASK);
    assertEquals(two, read);
    assertEquals(2, read.getVersion());
    reader2.stop();
  }

  @Test
  public void aProcessorThatLostTheTaskCannotOverwriteTheNewOwnersCheckpoint() {
    String job = "cp" + JOBS.incrementAndGet();
    MetricsRegistryMap oldRegistry = new MetricsRegistryMap();
    AzureCheckpointManager old = manager(config(job, "p1"), 5, oldRegistry);
    old.writeCheckpoint(TASK, new CheckpointV1(offsets("orders", "100")));

    AzureCheckpointManager now = manager(config(job, "p2"), 7, new MetricsRegistryMap());
    assertEquals(new CheckpointV1(offsets("orders", "100")), now.readLastCheckpoint(TASK));
    try {
      old.writeCheckpoint(TASK, new CheckpointV1(offsets("orders", "150")));
      fail("a stale owner's commit must be refused");
    } catch (FencedWriteException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("'p2'"));
      assertTrue(e.getMessage(), e.getMessage().contains("version 7"));
    }
    assertEquals(1, count(oldRegistry, "fenced-writes"));
    now.writeCheckpoint(TASK, new CheckpointV1(offsets("orders", "120")));
    old.stop();
    now.stop();

    AzureCheckpointManager later = manager(config(job, "p3"), 8, new MetricsRegistryMap());
    assertEquals(new CheckpointV1(offsets("orders", "120")), later.readLastCheckpoint(TASK));
    later.stop();
  }

  @Test
  public void readsCheckpointsUpstreamSamzaAzureWrote() throws Exception {
    String job = "cp-legacy-" + JOBS.incrementAndGet();
    // Upstream's layout: table = job.name without non-alphanumerics; PartitionKey = task name;
    // RowKey = the SSP as JSON with the partition as a string; property Offset.
    CloudTable table =
        CloudStorageAccount.parse(azurite.connectionString())
            .createCloudTableClient()
            .getTableReference(job.replaceAll("[^A-Za-z0-9]", ""));
    table.createIfNotExists();
    String[][] rows = {
      {"{\"system\":\"eventhubs\",\"partition\":\"0\",\"stream\":\"orders\"}", "4711"},
      {"{\"system\":\"eventhubs\",\"partition\":\"0\",\"stream\":\"refunds\"}", "-1"},
    };
    for (String[] row : rows) {
      DynamicTableEntity e = new DynamicTableEntity(TASK.getTaskName(), row[0]);
      e.getProperties().put("Offset", new EntityProperty(row[1]));
      table.execute(TableOperation.insertOrReplace(e));
    }

    MetricsRegistryMap registry = new MetricsRegistryMap();
    AzureCheckpointManager m = manager(config(job, "p1"), 2, registry);
    assertEquals(
        new CheckpointV1(offsets("orders", "4711", "refunds", "-1")), m.readLastCheckpoint(TASK));
    assertEquals(1, count(registry, "upstream-reads"));

    // Once ours exists, it wins.
    m.writeCheckpoint(TASK, new CheckpointV1(offsets("orders", "5000")));
    m.stop();
    AzureCheckpointManager next = manager(config(job, "p2"), 3, new MetricsRegistryMap());
    assertEquals(new CheckpointV1(offsets("orders", "5000")), next.readLastCheckpoint(TASK));
    next.stop();
  }

  @Test
  public void clearRemovesTheCheckpointsOfRegisteredTasks() {
    String job = "cp" + JOBS.incrementAndGet();
    AzureCheckpointManager m = manager(config(job, "p1"), 1, new MetricsRegistryMap());
    m.writeCheckpoint(TASK, new CheckpointV1(offsets("orders", "9")));
    m.clearCheckpoints();
    m.stop();
    AzureCheckpointManager next = manager(config(job, "p2"), 2, new MetricsRegistryMap());
    assertNull(next.readLastCheckpoint(TASK));
    next.stop();
  }

  @Test
  public void badConfigIsNamedAndTheFactoryIsUsable() {
    Map<String, String> c = config("cp" + JOBS.incrementAndGet(), "p1");
    c.put("task.checkpoint.azure.upstream.read", "maybe");
    try {
      new AzureCheckpointManagerFactory()
          .getCheckpointManager(new MapConfig(c), new MetricsRegistryMap());
      fail("expected a config error");
    } catch (AzureConfigException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("task.checkpoint.azure.upstream.read"));
      assertTrue(e.getMessage(), e.getMessage().contains("maybe"));
    }
    Map<String, String> noName = config("x", "p1");
    noName.remove("job.name");
    try {
      new AzureCheckpointManagerFactory()
          .getCheckpointManager(new MapConfig(noName), new MetricsRegistryMap());
      fail("expected a config error");
    } catch (AzureConfigException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("job.name"));
    }
  }
}
