package org.apache.samza.azure.coordinator;

import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.system.SystemStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's watch on the running model's input partition counts: when an input gained or lost
 * partitions, it asks for a new model. A failed look-up is retried at the next check; the running
 * model stays in force meanwhile.
 */
final class PartitionWatch {
  // The coordinator's logger: operators (and tests) find these lines under its name.
  private static final Logger LOG = LoggerFactory.getLogger(AzureJobCoordinator.class);

  /** 0: input partition counts are not watched. */
  private final long intervalMillis;

  private final JobModels models;
  private final CoordinatorMetrics metrics;
  private final AtomicBoolean checkRunning = new AtomicBoolean();

  // Touched only by the event thread.
  private long nextCheck;

  PartitionWatch(long intervalMillis, JobModels models, CoordinatorMetrics metrics) {
    this.intervalMillis = intervalMillis;
    this.models = models;
    this.metrics = metrics;
  }

  /** On the event thread, when leadership changes: the first check is an interval away. */
  void restart() {
    nextCheck = System.nanoTime() + intervalMillis * 1_000_000L;
  }

  /**
   * On the event thread, each time it wakes. The look-up (metadata fetches: seconds at times) runs
   * on {@code computer}, one at a time.
   *
   * @param newest whether {@code model} is the newest version seen; if not, a newer one is on its
   *     way and may already hold the change
   */
  void poll(
      boolean leading,
      JobModel model,
      boolean newest,
      NativeCoordinator c,
      ExecutorService computer) {
    if (!leading
        || intervalMillis == 0
        || model == null
        || !newest
        || System.nanoTime() - nextCheck < 0) {
      return;
    }
    restart();
    if (!checkRunning.compareAndSet(false, true)) {
      return;
    }
    computer.execute(
        () -> {
          try {
            Set<SystemStream> changed = models.partitionCountChanges(model);
            if (!changed.isEmpty()) {
              LOG.info("Partition count of inputs {} changed; asking for a new job model", changed);
              metrics.partitionCountChanges.inc();
              c.requestRebalance();
            }
          } catch (RuntimeException e) {
            LOG.warn("Could not read the partition counts of the inputs; will try again", e);
          } finally {
            checkRunning.set(false);
          }
        });
  }
}
