package org.apache.samza.azure.testing.job;

import org.apache.samza.config.Config;
import org.apache.samza.context.Context;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.task.InitableTask;
import org.apache.samza.task.MessageCollector;
import org.apache.samza.task.StreamTask;
import org.apache.samza.task.TaskCoordinator;

/**
 * Records when this processor holds a partition and every message it processes, one line each, in
 * {@code ownership.log.dir}/{@code <processor>.log}: {@code start|msg|stop <processor> <partition>
 * <offset or -> <epoch millis>}. The harness checks these for overlaps.
 */
// ClosableTask is deprecated in Samza 1.8 but still the low-level API's only close hook.
@SuppressWarnings("deprecation")
public final class OwnershipTask
    implements StreamTask, InitableTask, org.apache.samza.task.ClosableTask {

  private String processor;
  private int partition;

  static void write(Config config, String line) {
    TaskLog.append(config, "ownership.log.dir", line);
  }

  private Config config;

  @Override
  public void init(Context context) {
    config = context.getJobContext().getConfig();
    processor = config.get("processor.id");
    SystemStreamPartition ssp =
        context.getTaskContext().getTaskModel().getSystemStreamPartitions().iterator().next();
    partition = ssp.getPartition().getPartitionId();
    write(config, "start " + processor + " " + partition + " - " + System.currentTimeMillis());
  }

  @Override
  public void process(
      IncomingMessageEnvelope envelope, MessageCollector collector, TaskCoordinator coordinator) {
    write(
        config,
        "msg "
            + processor
            + " "
            + partition
            + " "
            + envelope.getOffset()
            + " "
            + System.currentTimeMillis());
  }

  @Override
  public void close() {
    write(config, "stop " + processor + " " + partition + " - " + System.currentTimeMillis());
  }
}
