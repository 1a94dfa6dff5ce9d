package org.apache.samza.azure.testing.job;

import org.apache.samza.application.TaskApplication;
import org.apache.samza.application.descriptors.TaskApplicationDescriptor;
import org.apache.samza.serializers.NoOpSerde;
import org.apache.samza.system.descriptors.GenericInputDescriptor;
import org.apache.samza.system.descriptors.GenericSystemDescriptor;
import org.apache.samza.task.StreamTaskFactory;

/** A low-level Samza application: {@link OwnershipTask} over the stream "input" of system "fs". */
public final class OwnershipApp implements TaskApplication {
  @Override
  public void describe(TaskApplicationDescriptor app) {
    GenericSystemDescriptor fs =
        new GenericSystemDescriptor("fs", FileSystemFactory.class.getName());
    GenericInputDescriptor<String> input = fs.getInputDescriptor("input", new NoOpSerde<String>());
    app.withInputStream(input).withTaskFactory((StreamTaskFactory) OwnershipTask::new);
  }
}
