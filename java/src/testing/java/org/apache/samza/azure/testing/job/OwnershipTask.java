package org.apache.samza.azure.testing.job;

import org.apache.samza.azure.testing.job.OwnershipLog.Kind;
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
 * {@code ownership.log.dir}/{@code <processor>.log} ({@link OwnershipLog.Entry}'s format). The
 * harness checks these for overlaps.
 */
// ClosableTask is deprecated in Samza 1.8 but still the low-level API's only close hook.
@SuppressWarnings("deprecation")
public final class OwnershipTask
    implements StreamTask, InitableTask, org.apache.samza.task.ClosableTask {

  private String processor;
  private int partition;

  /** Appends an {@link OwnershipLog.Entry} line, stamped now, to this processor's log. */
  static void write(Config config, Kind kind, String processor, int partition, String offset) {
    TaskLog.append(
        config,
        "ownership.log.dir",
        OwnershipLog.Entry.line(kind, processor, partition, offset, System.currentTimeMillis()));
  }

  private void log(Kind kind, String offset) {
    write(config, kind, processor, partition, offset);
  }

  private Config config;

  @Override
  public void init(Context context) {
    config = context.getJobContext().getConfig();
    processor = config.get("processor.id");
    SystemStreamPartition ssp =
        context.getTaskContext().getTaskModel().getSystemStreamPartitions().iterator().next();
    partition = ssp.getPartition().getPartitionId();
    log(Kind.START, null);
  }

  @Override
  public void process(
      IncomingMessageEnvelope envelope, MessageCollector collector, TaskCoordinator coordinator) {
    log(Kind.MSG, envelope.getOffset());
  }

  @Override
  public void close() {
    log(Kind.STOP, null);
  }
}
