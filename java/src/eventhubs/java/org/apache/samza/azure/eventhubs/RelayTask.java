package org.apache.samza.azure.eventhubs;

import java.nio.charset.StandardCharsets;
import org.apache.samza.azure.testing.job.TaskLog;
import org.apache.samza.config.Config;
import org.apache.samza.context.Context;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.system.OutgoingMessageEnvelope;
import org.apache.samza.system.SystemStream;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.system.eventhub.consumer.EventHubIncomingMessageEnvelope;
import org.apache.samza.task.InitableTask;
import org.apache.samza.task.MessageCollector;
import org.apache.samza.task.StreamTask;
import org.apache.samza.task.TaskCoordinator;

/**
 * Sends each event's body to the output event hub, keyed by the body (so Event Hubs spreads them by
 * hash), and records what it did in {@code relay.log.dir}/{@code <processor>.log}, one line per
 * event after it is handed to the producer: {@code msg <processor> <partition> <offset> <sequence
 * number> <body> <epoch millis>}; and {@code start|stop <processor> <partition> <epoch millis>}
 * when its container starts and stops the task. Bodies are expected to be short ASCII ids.
 */
// ClosableTask is deprecated in Samza 1.8 but still the low-level API's only close hook.
@SuppressWarnings("deprecation")
public final class RelayTask
    implements StreamTask, InitableTask, org.apache.samza.task.ClosableTask {
  public static final String LOG_DIR = "relay.log.dir";
  private static final SystemStream OUT = new SystemStream(RelayApp.SYSTEM, RelayApp.OUTPUT);

  private Config config;
  private String processor;
  private int partition;

  private static void write(Config config, String line) {
    TaskLog.append(config, LOG_DIR, line);
  }

  @Override
  public void init(Context context) {
    config = context.getJobContext().getConfig();
    processor = config.get("processor.id");
    SystemStreamPartition ssp =
        context.getTaskContext().getTaskModel().getSystemStreamPartitions().iterator().next();
    partition = ssp.getPartition().getPartitionId();
    write(config, "start " + processor + " " + partition + " " + System.currentTimeMillis());
  }

  @Override
  public void process(
      IncomingMessageEnvelope envelope, MessageCollector collector, TaskCoordinator coordinator) {
    byte[] body = (byte[]) envelope.getMessage();
    String id = new String(body, StandardCharsets.UTF_8);
    collector.send(new OutgoingMessageEnvelope(OUT, id, body));
    long sequenceNumber =
        envelope instanceof EventHubIncomingMessageEnvelope
            ? ((EventHubIncomingMessageEnvelope) envelope)
                .getEventData()
                .getSystemProperties()
                .getSequenceNumber()
            : -1;
    write(
        config,
        "msg "
            + processor
            + " "
            + partition
            + " "
            + envelope.getOffset()
            + " "
            + sequenceNumber
            + " "
            + id
            + " "
            + System.currentTimeMillis());
  }

  @Override
  public void close() {
    write(config, "stop " + processor + " " + partition + " " + System.currentTimeMillis());
  }
}
