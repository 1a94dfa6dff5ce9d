package org.apache.samza.azure.testing.job;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import org.apache.samza.application.StreamApplication;
import org.apache.samza.application.descriptors.ApplicationDescriptorImpl;
import org.apache.samza.application.descriptors.ApplicationDescriptorUtil;
import org.apache.samza.application.descriptors.StreamApplicationDescriptor;
import org.apache.samza.azure.testing.job.OwnershipLog.Kind;
import org.apache.samza.config.Config;
import org.apache.samza.config.JobConfig;
import org.apache.samza.config.MapConfig;
import org.apache.samza.context.Context;
import org.apache.samza.execution.LocalJobPlanner;
import org.apache.samza.operators.functions.MapFunction;
import org.apache.samza.processor.StreamProcessor;
import org.apache.samza.runtime.ProcessorLifecycleListener;
import org.apache.samza.serializers.NoOpSerde;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.system.descriptors.GenericInputDescriptor;
import org.apache.samza.system.descriptors.GenericSystemDescriptor;
import org.apache.samza.task.TaskFactoryUtil;

/**
 * A high-level application in its own JVM, driven by Samza's {@link StreamProcessor} directly, as a
 * custom runner would (not {@code AzureApplicationRunner}): {@code HighLevelProcessorMain
 * <config.properties> <processor id>}. Its one operator writes the same ownership log as {@link
 * OwnershipTask}, so {@link OwnershipLog} reads it the same way. The coordinator comes from {@code
 * job.coordinator.factory}; nothing of ours wraps the tasks.
 */
public final class HighLevelProcessorMain {
  private HighLevelProcessorMain() {}

  /** Records each message; start and stop of its task. Serializable, as operator functions are. */
  static final class Record implements MapFunction<Object, Object> {
    private static final long serialVersionUID = 1L;
    private transient Config config;
    private transient String processor;
    private transient int partition;

    @Override
    public void init(Context context) {
      config = context.getJobContext().getConfig();
      processor = config.get("processor.id");
      SystemStreamPartition ssp =
          context.getTaskContext().getTaskModel().getSystemStreamPartitions().iterator().next();
      partition = ssp.getPartition().getPartitionId();
      OwnershipTask.write(config, Kind.START, processor, partition, null);
    }

    @Override
    public Object apply(Object message) {
      // The message is "m<n>" on line n: n is its offset.
      OwnershipTask.write(
          config, Kind.MSG, processor, partition, String.valueOf(message).trim().substring(1));
      return message;
    }

    @Override
    public void close() {
      OwnershipTask.write(config, Kind.STOP, processor, partition, null);
    }
  }

  /** The input "input" of system "fs" through one map operator. */
  static final class App implements StreamApplication {
    @Override
    public void describe(StreamApplicationDescriptor app) {
      GenericSystemDescriptor fs =
          new GenericSystemDescriptor("fs", FileSystemFactory.class.getName());
      GenericInputDescriptor<Object> input = fs.getInputDescriptor("input", new NoOpSerde<>());
      app.getInputStream(input).map(new Record());
    }
  }

  @SuppressWarnings({"rawtypes", "unchecked"})
  public static void main(String[] args) throws Exception {
    Map<String, String> config = ProcessorMain.loadConfig(args[0], args[1], "ownership.log.dir");
    config.put("job.coordinator.factory", "org.apache.samza.azure.AzureJobCoordinatorFactory");
    ApplicationDescriptorImpl appDesc =
        ApplicationDescriptorUtil.getAppDescriptor(new App(), new MapConfig(config));
    // Planning only (no coordination utils): the runner part is ours, below.
    List<JobConfig> jobs =
        new LocalJobPlanner(appDesc, null, UUID.randomUUID().toString(), null).prepareJobs();
    JobConfig job = jobs.get(0);
    CountDownLatch ended = new CountDownLatch(1);
    StreamProcessor processor =
        new StreamProcessor(
            args[1],
            job,
            Collections.emptyMap(),
            TaskFactoryUtil.getTaskFactory(appDesc),
            Optional.empty(),
            Optional.empty(),
            Optional.empty(),
            sp ->
                new ProcessorLifecycleListener() {
                  @Override
                  public void afterStop() {
                    ended.countDown();
                  }

                  @Override
                  public void afterFailure(Throwable t) {
                    t.printStackTrace();
                    ended.countDown();
                  }
                },
            null,
            null);
    Runtime.getRuntime().addShutdownHook(new Thread(processor::stop, "graceful-stop"));
    processor.start();
    ended.await();
    System.out.println("processor " + args[1] + " finished");
  }
}
