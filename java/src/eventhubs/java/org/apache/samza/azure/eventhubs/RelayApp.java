package org.apache.samza.azure.eventhubs;

import org.apache.samza.application.TaskApplication;
import org.apache.samza.application.descriptors.TaskApplicationDescriptor;
import org.apache.samza.config.Config;
import org.apache.samza.serializers.NoOpSerde;
import org.apache.samza.system.descriptors.GenericInputDescriptor;
import org.apache.samza.system.descriptors.GenericOutputDescriptor;
import org.apache.samza.system.descriptors.GenericSystemDescriptor;
import org.apache.samza.task.StreamTaskFactory;

/**
 * A low-level Samza application: {@link RelayTask} copies every event of stream "in" to stream
 * "out", both in system "eventhubs", whose factory comes from {@code
 * systems.eventhubs.samza.factory} (Samza's EventHubSystemFactory against a real namespace, or the
 * fake-client subclass). Bodies stay bytes end to end.
 */
public final class RelayApp implements TaskApplication {
  public static final String SYSTEM = "eventhubs";
  public static final String INPUT = "in";
  public static final String OUTPUT = "out";

  @Override
  public void describe(TaskApplicationDescriptor app) {
    Config config = app.getConfig();
    String factory = config.get("systems." + SYSTEM + ".samza.factory");
    GenericSystemDescriptor eventHubs = new GenericSystemDescriptor(SYSTEM, factory);
    GenericInputDescriptor<byte[]> in =
        eventHubs.getInputDescriptor(INPUT, new NoOpSerde<byte[]>());
    GenericOutputDescriptor<byte[]> out =
        eventHubs.getOutputDescriptor(OUTPUT, new NoOpSerde<byte[]>());
    app.withInputStream(in)
        .withOutputStream(out)
        .withTaskFactory((StreamTaskFactory) RelayTask::new);
  }
}
