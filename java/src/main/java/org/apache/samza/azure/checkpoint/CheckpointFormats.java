package org.apache.samza.azure.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.samza.Partition;
import org.apache.samza.SamzaException;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.checkpoint.CheckpointV1;
import org.apache.samza.checkpoint.CheckpointV2;
import org.apache.samza.container.TaskName;
import org.apache.samza.serializers.CheckpointV1Serde;
import org.apache.samza.serializers.CheckpointV2Serde;
import org.apache.samza.system.SystemStreamPartition;

/**
 * The texts checkpoints are stored as: Samza's own V1 and V2 serdes for ours, and the JSON row keys
 * of upstream samza-azure's table. Errors name the task.
 */
final class CheckpointFormats {
  private final ObjectMapper json = new ObjectMapper();
  private final CheckpointV1Serde v1 = new CheckpointV1Serde();
  private final CheckpointV2Serde v2 = new CheckpointV2Serde();

  String text(TaskName taskName, Checkpoint checkpoint) {
    if (checkpoint instanceof CheckpointV1) {
      return new String(v1.toBytes((CheckpointV1) checkpoint), StandardCharsets.UTF_8);
    } else if (checkpoint instanceof CheckpointV2) {
      return new String(v2.toBytes((CheckpointV2) checkpoint), StandardCharsets.UTF_8);
    }
    throw new SamzaException(
        "checkpoint of task "
            + taskName
            + ": unsupported checkpoint class "
            + checkpoint.getClass().getName()
            + " (version "
            + checkpoint.getVersion()
            + "); expected CheckpointV1 or CheckpointV2");
  }

  Checkpoint checkpoint(TaskName taskName, short version, String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    Checkpoint c;
    try {
      // Samza's V1 serde returns null on bad input instead of throwing.
      c = version == 1 ? v1.fromBytes(bytes) : version == 2 ? v2.fromBytes(bytes) : null;
    } catch (RuntimeException e) {
      throw new SamzaException(
          "checkpoint version " + version + " of task " + taskName + " could not be parsed", e);
    }
    if (c == null) {
      throw new SamzaException(
          "checkpoint version " + version + " of task " + taskName + " could not be parsed");
    }
    return c;
  }

  /** The partition an upstream row's key names: the SSP as JSON. */
  SystemStreamPartition upstreamSsp(TaskName taskName, String rowKey) {
    try {
      Map<?, ?> m = json.readValue(rowKey, Map.class);
      Object system = m.get("system");
      Object stream = m.get("stream");
      Object partition = m.get("partition");
      if (system == null || stream == null || partition == null) {
        throw new IOException("expected system, stream and partition");
      }
      return new SystemStreamPartition(
          system.toString(),
          stream.toString(),
          new Partition(Integer.parseInt(partition.toString())));
    } catch (IOException | NumberFormatException e) {
      throw new SamzaException(
          "upstream checkpoint row of task " + taskName + " has an unreadable key '" + rowKey + "'",
          e);
    }
  }
}
