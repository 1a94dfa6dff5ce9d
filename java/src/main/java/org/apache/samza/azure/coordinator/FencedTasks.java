package org.apache.samza.azure.coordinator;

import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.samza.config.Config;
import org.apache.samza.context.Context;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.task.AsyncStreamTask;
import org.apache.samza.task.AsyncStreamTaskFactory;
import org.apache.samza.task.DrainListenerTask;
import org.apache.samza.task.EndOfStreamListenerTask;
import org.apache.samza.task.InitableTask;
import org.apache.samza.task.MessageCollector;
import org.apache.samza.task.StreamTask;
import org.apache.samza.task.StreamTaskFactory;
import org.apache.samza.task.TaskCallback;
import org.apache.samza.task.TaskCoordinator;
import org.apache.samza.task.TaskFactory;
import org.apache.samza.task.WindowableTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Wraps an application's tasks so each message and window first passes the gate of their container
 * ({@link ProcessingFence.Gate}), in addition to the fencing chooser every container has: a message
 * chosen just before the deadline is still checked when it is processed. A fenced message is
 * neither processed nor acknowledged: its callback never completes, so Samza neither commits its
 * offset nor sends the task more work, and the container stops cleanly when the coordinator asks
 * (failing it instead would make Samza stop the whole processor). Every optional task interface is
 * forwarded when the wrapped task has it.
 *
 * <p>Not wrapped, with the fencing chooser as their guard: high-level applications (Samza injects
 * its thread pool into that task type only) and synchronous tasks when {@code
 * job.container.thread.pool.size} is above 1 (Samza runs those on its pool; wrapped, they would run
 * on the run loop thread).
 */
public final class FencedTasks {
  private static final Logger LOG = LoggerFactory.getLogger(FencedTasks.class);
  private static final String POOL_SIZE = "job.container.thread.pool.size";

  private FencedTasks() {}

  @SuppressWarnings("rawtypes")
  public static TaskFactory wrap(TaskFactory factory, String processorId, Config config) {
    if (factory instanceof StreamTaskFactory && config.getInt(POOL_SIZE, 0) <= 1) {
      StreamTaskFactory f = (StreamTaskFactory) factory;
      return (AsyncStreamTaskFactory) () -> new Fenced(f.createInstance(), processorId);
    }
    if (factory instanceof AsyncStreamTaskFactory) {
      AsyncStreamTaskFactory f = (AsyncStreamTaskFactory) factory;
      return (AsyncStreamTaskFactory) () -> new Fenced(f.createInstance(), processorId);
    }
    LOG.info(
        "Tasks of {} are not wrapped; the fencing chooser alone stops their messages",
        factory.getClass().getName());
    return factory;
  }

  // ClosableTask is deprecated in Samza 1.8 but still how tasks are closed.
  @SuppressWarnings("deprecation")
  private static final class Fenced
      implements AsyncStreamTask,
          InitableTask,
          org.apache.samza.task.ClosableTask,
          WindowableTask,
          EndOfStreamListenerTask,
          DrainListenerTask {
    private final Object task;
    private final String processorId;
    private final AtomicBoolean reported = new AtomicBoolean();

    /** The gate of the container this task belongs to (created with it, on the same thread). */
    private volatile ProcessingFence.Gate gate;

    Fenced(Object task, String processorId) {
      this.task = task;
      this.processorId = processorId;
      this.gate = ProcessingFence.gateFor(processorId);
    }

    private boolean mayProcess() {
      ProcessingFence.Gate g = gate;
      if (g == null) {
        // Not created by our coordinator's start (no gate then): the processor's current one.
        g = gate = ProcessingFence.gateFor(processorId);
      }
      if (g == null || g.mayProcess()) {
        return true;
      }
      if (reported.compareAndSet(false, true)) {
        LOG.warn(
            "Processor {} was fenced (no heartbeat reached storage in time); its task stops"
                + " processing until the container stops",
            processorId);
      }
      return false;
    }

    @Override
    public void processAsync(
        IncomingMessageEnvelope envelope,
        MessageCollector collector,
        TaskCoordinator coordinator,
        TaskCallback callback) {
      if (!mayProcess()) {
        return;
      }
      if (task instanceof AsyncStreamTask) {
        ((AsyncStreamTask) task).processAsync(envelope, collector, coordinator, callback);
        return;
      }
      try {
        ((StreamTask) task).process(envelope, collector, coordinator);
        callback.complete();
      } catch (Throwable t) {
        callback.failure(t);
      }
    }

    @Override
    public void init(Context context) throws Exception {
      if (task instanceof InitableTask) {
        ((InitableTask) task).init(context);
      }
    }

    @Override
    public void close() throws Exception {
      if (task instanceof org.apache.samza.task.ClosableTask) {
        ((org.apache.samza.task.ClosableTask) task).close();
      }
    }

    @Override
    public void window(MessageCollector collector, TaskCoordinator coordinator) throws Exception {
      if (task instanceof WindowableTask && mayProcess()) {
        ((WindowableTask) task).window(collector, coordinator);
      }
    }

    @Override
    public void onEndOfStream(MessageCollector collector, TaskCoordinator coordinator)
        throws Exception {
      if (task instanceof EndOfStreamListenerTask) {
        ((EndOfStreamListenerTask) task).onEndOfStream(collector, coordinator);
      }
    }

    @Override
    public void onDrain(MessageCollector collector, TaskCoordinator coordinator) throws Exception {
      if (task instanceof DrainListenerTask) {
        ((DrainListenerTask) task).onDrain(collector, coordinator);
      }
    }
  }
}
