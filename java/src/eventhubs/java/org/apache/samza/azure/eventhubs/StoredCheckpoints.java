package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.storage.CloudStorageAccount;
import com.microsoft.azure.storage.StorageException;
import com.microsoft.azure.storage.table.CloudTable;
import com.microsoft.azure.storage.table.DynamicTableEntity;
import com.microsoft.azure.storage.table.EntityProperty;
import com.microsoft.azure.storage.table.TableOperation;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.serializers.CheckpointV1Serde;
import org.apache.samza.serializers.CheckpointV2Serde;

/**
 * Reads, without taking part, the checkpoints our checkpoint manager has committed while the
 * processors run. Reading through {@code AzureCheckpointManager} would claim the tasks and fence
 * their running owners, so this reads the task's owner row ({@code <task>|owner} in partition
 * {@code tasks}) in the job's checkpoint table directly (the layout in docs/protocol.md,
 * "Checkpoints": each version's text in properties {@code v<version>c<n>}, with {@code
 * v<version>bytes}, {@code v<version>chunks} and {@code v<version>rows}). Only checkpoints kept
 * inline in that row are read; this job's are small.
 */
final class StoredCheckpoints {
  private final CloudTable table;

  StoredCheckpoints(Map<String, String> jobConfig, String connectionString) throws Exception {
    Native.ensureLoaded();
    Map<String, String> c =
        ConfigArrays.select(
            jobConfig,
            new String[] {"job.name", "job.id"},
            new String[] {"azure.storage.", "sensitive.azure.storage."});
    ConfigArrays arrays = new ConfigArrays(c);
    long handle = Native.checkpointOpen(arrays.keys, arrays.values, "test-observer");
    String name;
    try {
      name = Native.checkpointTable(handle);
    } finally {
      Native.checkpointClose(handle);
    }
    table =
        CloudStorageAccount.parse(connectionString)
            .createCloudTableClient()
            .getTableReference(name);
  }

  /**
   * The owner row's key: the task name with {@code / \\ # ? % |} and control characters
   * percent-escaped (UTF-8), then {@code |owner}.
   */
  static String ownerRow(String taskName) {
    StringBuilder key = new StringBuilder();
    taskName
        .codePoints()
        .forEach(
            c -> {
              if ("/\\#?%|".indexOf(c) >= 0 || Character.isISOControl(c)) {
                for (byte b : new String(Character.toChars(c)).getBytes(StandardCharsets.UTF_8)) {
                  key.append(String.format("%%%02X", b & 0xff));
                }
              } else {
                key.appendCodePoint(c);
              }
            });
    return key.append("|owner").toString();
  }

  /** Version -> checkpoint of the task; empty when it has none (or the table is not there yet). */
  Map<Short, Checkpoint> read(String taskName) throws Exception {
    DynamicTableEntity owner;
    try {
      owner =
          table
              .execute(
                  TableOperation.retrieve("tasks", ownerRow(taskName), DynamicTableEntity.class))
              .getResultAsType();
    } catch (StorageException e) {
      if (e.getHttpStatusCode() == 404) {
        return new TreeMap<>();
      }
      throw e;
    }
    Map<Short, Checkpoint> out = new TreeMap<>();
    if (owner == null) {
      return out;
    }
    HashMap<String, EntityProperty> p = owner.getProperties();
    for (short version = 1; version <= 2; version++) {
      EntityProperty chunks = p.get("v" + version + "chunks");
      if (chunks == null) {
        continue;
      }
      if (p.get("v" + version + "rows").getValueAsLong() != 0) {
        throw new IllegalStateException(
            "checkpoint v" + version + " of " + taskName + " is not inline; not read here");
      }
      StringBuilder text = new StringBuilder();
      for (int i = 0; i < chunks.getValueAsLong(); i++) {
        text.append(p.get("v" + version + "c" + i).getValueAsString());
      }
      byte[] bytes = text.toString().getBytes(StandardCharsets.UTF_8);
      if (bytes.length != p.get("v" + version + "bytes").getValueAsLong()) {
        throw new IllegalStateException("checkpoint v" + version + " of " + taskName + " is torn");
      }
      out.put(
          version,
          version == 1
              ? new CheckpointV1Serde().fromBytes(bytes)
              : new CheckpointV2Serde().fromBytes(bytes));
    }
    return out;
  }

  /** The processor the task's owner row names, or null. */
  String owner(String taskName) throws Exception {
    try {
      DynamicTableEntity owner =
          table
              .execute(
                  TableOperation.retrieve("tasks", ownerRow(taskName), DynamicTableEntity.class))
              .getResultAsType();
      return owner == null ? null : owner.getProperties().get("processor").getValueAsString();
    } catch (StorageException e) {
      if (e.getHttpStatusCode() == 404) {
        return null;
      }
      throw e;
    }
  }
}
