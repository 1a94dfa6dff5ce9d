package org.apache.samza.azure.checkpoint;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;
import org.apache.samza.SamzaException;
import org.apache.samza.azure.coordinator.ProcessingFence;
import org.apache.samza.azure.errors.FencedWriteException;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.checkpoint.CheckpointManager;
import org.apache.samza.checkpoint.CheckpointV1;
import org.apache.samza.checkpoint.CheckpointV2;
import org.apache.samza.config.ApplicationConfig;
import org.apache.samza.config.Config;
import org.apache.samza.config.TaskConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.system.SystemStreamPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Task checkpoints in Azure Table Storage (storage logic in the native core; see docs/protocol.md,
 * "Checkpoints"). Writes {@link CheckpointV1} and {@link CheckpointV2}, each in one atomic
 * transaction; reads follow {@code task.checkpoint.read.versions}. When the processor runs under
 * our coordinator, each write is fenced by the JobModel version its container started with, so a
 * processor that lost a task cannot overwrite the new owner's checkpoint. A task with no checkpoint
 * of ours is read from upstream samza-azure's table, so switching does not reprocess.
 *
 * <p>Storage outages: starting and committing wait out storage that cannot be reached for as long
 * as it takes (a failed start or commit ends Samza's container, and so the processor), until the
 * coordinator stops the container ({@link ContainerStops}): then they give up at once.
 */
public final class AzureCheckpointManager implements CheckpointManager {
  private static final Logger LOG = LoggerFactory.getLogger(AzureCheckpointManager.class);
  private static final String[] NATIVE_KEYS = {"job.name", "job.id"};
  private static final String[] NATIVE_PREFIXES = {
    "azure.storage.", "sensitive.azure.storage.", "task.checkpoint.azure."
  };

  private final Map<String, String> nativeConfig;
  private final String processorId;
  private final List<Short> readVersions;
  private final CheckpointMetrics metrics;
  private final Set<TaskName> tasks = ConcurrentHashMap.newKeySet();
  private final CheckpointFormats formats = new CheckpointFormats();
  private final LongSupplier generation;

  /** {@link ContainerStops}' count when this manager was created. */
  private final long createdAt;

  /** Why the container stopped needing this manager; null while it runs. */
  private volatile String abandoned;

  private volatile NativeCheckpoints store;

  public AzureCheckpointManager(Config config, MetricsRegistry registry) {
    this(config, registry, null);
  }

  /**
   * @param generation the JobModel version fencing this container's writes; null: ask our
   *     coordinator (0 when the processor does not run under it)
   */
  AzureCheckpointManager(Config config, MetricsRegistry registry, LongSupplier generation) {
    this.nativeConfig = ConfigArrays.select(config, NATIVE_KEYS, NATIVE_PREFIXES);
    String id = new ApplicationConfig(config).getProcessorId();
    this.processorId = id == null ? "unidentified-" + UUID.randomUUID() : id;
    this.createdAt = ContainerStops.count(processorId);
    this.readVersions = new TaskConfig(config).getCheckpointReadVersions();
    this.metrics = new CheckpointMetrics(registry);
    this.generation =
        generation != null
            ? generation
            : () -> {
              ProcessingFence fence = ProcessingFence.of(processorId);
              return fence == null ? 0 : fence.generation();
            };
    // Bad config fails here, naming the key, before any container work.
    NativeCheckpoints.open(nativeConfig, processorId).close();
  }

  @Override
  public void createResources() {
    try (NativeCheckpoints s = NativeCheckpoints.open(nativeConfig, processorId)) {
      s.createResources(false);
    }
  }

  @Override
  public void register(TaskName taskName) {
    tasks.add(taskName);
  }

  /**
   * Creates the table if needed and takes every registered task for this container, waiting out a
   * storage outage until storage answers or the container is stopped.
   */
  @Override
  public synchronized void start() {
    if (store == null) {
      store = NativeCheckpoints.open(nativeConfig, processorId);
    }
    String stoppedSince = ContainerStops.register(processorId, createdAt, this);
    if (stoppedSince != null) {
      abandon(stoppedSince);
    }
    long generation = this.generation.getAsLong();
    if (generation == 0) {
      LOG.warn(
          "Processor {} does not run under AzureJobCoordinator: its checkpoint writes are not"
              + " fenced by a job model version (the latest claim of a task wins)",
          processorId);
    }
    try {
      store.createResources(true);
      store.claim(tasks.stream().map(TaskName::getTaskName).toArray(String[]::new), generation);
    } catch (RuntimeException e) {
      throw stoppedWhileStarting(e);
    }
    LOG.info(
        "Checkpoints of {} tasks in table {} (processor {}, job model version {})",
        tasks.size(),
        store.table(),
        processorId,
        generation);
  }

  @Override
  public Checkpoint readLastCheckpoint(TaskName taskName) {
    NativeCheckpoints s = started(taskName);
    long t0 = System.nanoTime();
    Map<Short, String> byVersion;
    try {
      byVersion = s.read(taskName.getTaskName());
    } catch (RuntimeException e) {
      throw stoppedWhileStarting(e);
    }
    Checkpoint checkpoint = null;
    for (Short version : readVersions) {
      String text = byVersion.get(version);
      if (text != null) {
        checkpoint = formats.checkpoint(taskName, version, text);
        break;
      }
    }
    if (checkpoint == null && byVersion.isEmpty()) {
      checkpoint = upstream(s, taskName);
    }
    metrics.readLatency.update((System.nanoTime() - t0) / 1000);
    return checkpoint;
  }

  @Override
  public void writeCheckpoint(TaskName taskName, Checkpoint checkpoint) {
    NativeCheckpoints s = started(taskName);
    String text = formats.text(taskName, checkpoint);
    long t0 = System.nanoTime();
    try {
      s.write(taskName.getTaskName(), checkpoint.getVersion(), text);
    } catch (FencedWriteException e) {
      metrics.fencedWrites.inc();
      throw e;
    } catch (RuntimeException e) {
      metrics.failedWrites.inc();
      if (abandoned != null) {
        // Samza records a failed commit silently; say why this one was given up.
        LOG.info("Checkpoint of task {} given up: {}", taskName, abandoned);
      }
      throw e;
    }
    metrics.writes.inc();
    metrics.writeLatency.update((System.nanoTime() - t0) / 1000);
  }

  @Override
  public void clearCheckpoints() {
    try (NativeCheckpoints s = NativeCheckpoints.open(nativeConfig, processorId)) {
      s.clear(tasks.stream().map(TaskName::getTaskName).toArray(String[]::new));
    }
  }

  /**
   * The container is being stopped: what waits for storage gives up at once, and later calls fail
   * at once. Called from any thread; never blocks.
   */
  void abandon(String reason) {
    if (abandoned == null) {
      abandoned = reason;
    }
    NativeCheckpoints s = store;
    if (s != null) {
      try {
        s.abandon(reason);
      } catch (IllegalStateException closed) {
        // Stopped meanwhile: nothing left to give up.
      }
    }
  }

  @Override
  public synchronized void stop() {
    ContainerStops.unregister(processorId, this);
    if (store != null) {
      store.close();
      store = null;
    }
  }

  private NativeCheckpoints started(TaskName taskName) {
    if (!tasks.contains(taskName)) {
      throw new SamzaException("task " + taskName + " is not registered with this manager");
    }
    NativeCheckpoints s = store;
    if (s == null) {
      throw new SamzaException("the checkpoint manager is not started (task " + taskName + ")");
    }
    return s;
  }

  /**
   * {@code e} itself, unless it came from the container being stopped while starting: then an
   * {@link InterruptedException}, which is how Samza itself stops a container that is still
   * starting, and which SamzaContainer ends as stopped, not failed (a failed container ends its
   * StreamProcessor).
   */
  private RuntimeException stoppedWhileStarting(RuntimeException e) {
    if (abandoned == null) {
      return e;
    }
    InterruptedException stopped =
        new InterruptedException(
            "the container of processor "
                + processorId
                + " was stopped while starting: "
                + abandoned);
    stopped.initCause(e);
    throw AzureCheckpointManager.<RuntimeException>sneakyThrow(stopped);
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> RuntimeException sneakyThrow(Throwable t) throws T {
    throw (T) t;
  }

  /** Upstream samza-azure's rows: RowKey = the SSP as JSON, Offset = the offset. */
  private Checkpoint upstream(NativeCheckpoints s, TaskName taskName) {
    Map<String, String> rows;
    try {
      rows = s.upstream(taskName.getTaskName());
    } catch (RuntimeException e) {
      throw stoppedWhileStarting(e);
    }
    if (rows.isEmpty()) {
      return null;
    }
    Map<SystemStreamPartition, String> offsets = new HashMap<>();
    for (Map.Entry<String, String> row : rows.entrySet()) {
      offsets.put(formats.upstreamSsp(taskName, row.getKey()), row.getValue());
    }
    metrics.upstreamReads.inc();
    LOG.info(
        "Task {} has no checkpoint of ours; read {} offsets from upstream samza-azure's table",
        taskName,
        offsets.size());
    return new CheckpointV1(offsets);
  }
}
