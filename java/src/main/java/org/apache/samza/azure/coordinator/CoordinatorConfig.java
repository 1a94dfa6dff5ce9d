package org.apache.samza.azure.coordinator;

import java.util.Map;
import org.apache.samza.azure.FencedChooserFactory;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.config.Config;
import org.apache.samza.config.StorageConfig;
import org.apache.samza.config.TaskConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What {@link AzureJobCoordinator} reads from the job's config: the checks that fail a bad config
 * with an exception naming the key, the partition-watch interval, and the keys that cross to the
 * native side.
 */
final class CoordinatorConfig {
  // The coordinator's logger: operators (and tests) find these lines under its name.
  private static final Logger LOG = LoggerFactory.getLogger(AzureJobCoordinator.class);
  private static final String[] NATIVE_PREFIXES = {
    "azure.storage.", "sensitive.azure.storage.", "job.coordinator.azure."
  };
  // task.shutdown.ms: the native side checks that the barrier timeout outlasts a container stop.
  private static final String[] NATIVE_KEYS = {"job.name", "job.id", "task.shutdown.ms"};
  static final String PARTITION_WATCH_MS = "job.coordinator.monitor-partition-change.frequency.ms";
  private static final long DEFAULT_PARTITION_WATCH_MS = 300_000;
  private static final String BATCH_SIZE = "task.consumer.batch.size";
  private static final String CONNECT = "azure.storage.connect";
  private static final String DIAGNOSTICS = "job.diagnostics.enabled";

  private CoordinatorConfig() {}

  /**
   * Samza's own key and default. Like ZkJobCoordinator, jobs with durable stores are not watched:
   * new partitions would change the task-to-changelog mapping under their state.
   */
  static long partitionWatchMillis(Config config) {
    long ms;
    try {
      ms = config.getLong(PARTITION_WATCH_MS, DEFAULT_PARTITION_WATCH_MS);
    } catch (NumberFormatException e) {
      throw new AzureConfigException(
          PARTITION_WATCH_MS
              + " must be a whole number of milliseconds, got '"
              + config.get(PARTITION_WATCH_MS)
              + "'");
    }
    if (ms < 0) {
      throw new AzureConfigException(
          PARTITION_WATCH_MS + " must be 0 (off) or a positive number of milliseconds, got " + ms);
    }
    if (ms > 0 && new StorageConfig(config).hasDurableStores()) {
      LOG.info("Not watching input partition counts: the job has durable stores");
      return 0;
    }
    return ms;
  }

  /** Only the keys the native side reads cross the boundary; nothing else of the config. */
  static Map<String, String> nativeConfig(Config config) {
    return ConfigArrays.select(config, NATIVE_KEYS, NATIVE_PREFIXES);
  }

  /**
   * The processing fence needs Samza to ask our chooser for every message: the container's config
   * is StreamProcessor's, the one we are given, so it must name the chooser here.
   */
  static void checkFenced(Config config) {
    String chooser = config.get(TaskConfig.MESSAGE_CHOOSER_CLASS_NAME);
    String ours = FencedChooserFactory.class.getName();
    if (!ours.equals(chooser)) {
      throw new AzureConfigException(
          TaskConfig.MESSAGE_CHOOSER_CLASS_NAME
              + " must be "
              + ours
              + " (found "
              + chooser
              + "): it stops processing when this processor may have lost its partitions."
              + " AzureApplicationRunner sets it; with another runner, set it and put your own"
              + " chooser factory, if any, in "
              + FencedChooserFactory.WRAPPED);
    }
    // Samza's BatchingChooser hands out a batch's messages without asking the chooser it wraps.
    String batch = config.get(BATCH_SIZE);
    if (batch != null && !batch.trim().isEmpty() && !batch.trim().equals("0")) {
      throw new AzureConfigException(
          BATCH_SIZE
              + " must be unset or 0 with AzureJobCoordinator (found "
              + batch
              + "): batched messages bypass the processing fence");
    }
  }

  /**
   * Where Samza itself would expose the connection string: its config logging masks only {@code
   * sensitive.*} values, and its DiagnosticsManager publishes the raw config, masked keys included,
   * to the diagnostics stream.
   */
  static void checkSecrets(Config config) {
    boolean connect = config.containsKey(CONNECT) || config.containsKey("sensitive." + CONNECT);
    if (connect && config.getBoolean(DIAGNOSTICS, false)) {
      throw new AzureConfigException(
          DIAGNOSTICS
              + "=true would publish the storage connection string: Samza's diagnostics send the"
              + " job's raw config, sensitive.* values included, to the diagnostics stream. Turn"
              + " diagnostics off to use AzureJobCoordinator");
    }
    if (config.containsKey(CONNECT)) {
      LOG.warn(
          "The storage connection string is in '{}', which Samza shows unmasked wherever it logs"
              + " the config; move it to 'sensitive.{}'",
          CONNECT,
          CONNECT);
    }
  }
}
