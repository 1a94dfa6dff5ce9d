package org.apache.samza.azure.coordinator;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.samza.azure.checkpoint.ContainerStops;
import org.apache.samza.config.Config;
import org.apache.samza.coordinator.JobCoordinator;
import org.apache.samza.coordinator.JobCoordinatorListener;
import org.apache.samza.job.model.ContainerModel;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.metrics.MetricsRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Samza standalone coordination on Azure Storage. The protocol runs natively (see
 * docs/protocol.md); this class turns its events into {@link JobCoordinatorListener} calls on one
 * thread of its own, and computes JobModels when this processor leads ({@link CoordinatorConfig}
 * checks the config, {@link PartitionWatch} watches the inputs' partition counts).
 *
 * <p>Listener contract: {@code onJobModelExpired} always precedes {@code onNewJobModel}; the last
 * call is exactly one of {@code onCoordinatorStop} / {@code onCoordinatorFailure}; the listener is
 * never called with a lock of ours held; {@link #stop()} is idempotent, never blocks and may be
 * called from any thread, including listener callbacks.
 */
public final class AzureJobCoordinator implements JobCoordinator {
  private static final Logger LOG = LoggerFactory.getLogger(AzureJobCoordinator.class);
  private static final long POLL_MILLIS = 500;
  static final String PARTITION_WATCH_MS = CoordinatorConfig.PARTITION_WATCH_MS;

  private final String processorId;
  private final Config config;
  private final CoordinatorMetrics metrics;
  private final JobModels models;
  private final PartitionWatch partitions;
  private final AtomicBoolean started = new AtomicBoolean();
  private final AtomicBoolean stopRequested = new AtomicBoolean();
  private final AtomicBoolean finished = new AtomicBoolean();
  private volatile JobCoordinatorListener listener;
  private volatile NativeCoordinator coordinator;
  private volatile JobModel jobModel;
  private volatile ProcessingFence fence;

  private volatile Thread eventThread;

  /**
   * Computations and partition-count checks (metadata fetches, resource creation: seconds at times)
   * run here, so the event thread never makes a Fence wait behind them.
   */
  private volatile ExecutorService computer;

  /** The event thread is inside the listener's onJobModelExpired. */
  private volatile boolean expiring;

  /**
   * StreamProcessor called stop() from inside onJobModelExpired: that is how it reports a container
   * that did not stop within task.shutdown.ms.
   */
  private volatile boolean stopDuringExpiry;

  // Touched only by the event thread.
  private ContainerModel running;
  private boolean containerStopped = true;

  /** Release was asked while a container still ran: answered once it stops. */
  private boolean releasePending;

  /** onJobModelExpired was called since the last onNewJobModel (StreamProcessor needs it). */
  private boolean expired;

  private boolean leading;

  /** The last model parsed, by version: prepare and start of one version carry the same one. */
  private long parsedVersion = -1;

  private JobModel parsedModel;
  private long jobModelVersion;

  public AzureJobCoordinator(String processorId, Config config, MetricsRegistry registry) {
    this.processorId = Objects.requireNonNull(processorId, "processorId");
    this.config = Objects.requireNonNull(config, "config");
    this.metrics = new CoordinatorMetrics(registry);
    this.models = new JobModels(config, registry);
    this.partitions = new PartitionWatch(partitionWatchMillis(config), models, metrics);
  }

  /** See {@link CoordinatorConfig#partitionWatchMillis}. */
  static long partitionWatchMillis(Config config) {
    return CoordinatorConfig.partitionWatchMillis(config);
  }

  /** Only the keys the native side reads cross the boundary; nothing else of the config. */
  public static Map<String, String> nativeConfig(Config config) {
    return CoordinatorConfig.nativeConfig(config);
  }

  @Override
  public void start() {
    if (!started.compareAndSet(false, true)) {
      return;
    }
    if (stopRequested.get()) {
      finish(null);
      return;
    }
    // Bad config fails here, with an exception naming the key.
    CoordinatorConfig.checkFenced(config);
    CoordinatorConfig.checkSecrets(config);
    coordinator = NativeCoordinator.start(nativeConfig(config), processorId);
    fence = ProcessingFence.register(processorId, coordinator);
    computer =
        Executors.newSingleThreadExecutor(
            r -> {
              Thread t = new Thread(r, "samza-azure-compute-" + processorId);
              t.setDaemon(true);
              return t;
            });
    Thread t = new Thread(this::eventLoop, "samza-azure-coordinator-" + processorId);
    t.setDaemon(true);
    eventThread = t;
    t.start();
    if (stopRequested.get()) {
      coordinator.stop();
    }
  }

  @Override
  public void stop() {
    if (expiring && Thread.currentThread() == eventThread) {
      // StreamProcessor's verdict: the container did not stop within task.shutdown.ms.
      stopDuringExpiry = true;
    }
    if (!stopRequested.compareAndSet(false, true)) {
      return;
    }
    NativeCoordinator c = coordinator;
    if (c != null) {
      c.stop();
    } else if (!started.get()) {
      // Never started: nothing to leave, but the listener still gets its last call.
      finish(null);
    }
  }

  /** Still abstract in Samza 1.8's JobCoordinator, so it must be implemented. */
  @Deprecated
  @Override
  public String getProcessorId() {
    return processorId;
  }

  @Override
  public void setListener(JobCoordinatorListener listener) {
    this.listener = listener;
  }

  @Override
  public JobModel getJobModel() {
    return jobModel;
  }

  private void eventLoop() {
    NativeCoordinator c = coordinator;
    Throwable failure = null;
    try {
      while (true) {
        CoordinatorEvent event = c.nextEvent(POLL_MILLIS);
        CoordinatorCounters m = c.metrics();
        metrics.update(m);
        partitions.poll(leading, jobModel, jobModelVersion == m.get("seen_version"), c, computer);
        if (releasePending && !fence.containerConsuming()) {
          LOG.info("Container of processor {} stopped; leaving", processorId);
          releasePending = false;
          c.released();
        }
        if (event == null) {
          continue;
        }
        if (event.kind == CoordinatorEvent.Kind.STOPPED) {
          if (event.failed()) {
            try {
              c.throwFailure();
            } catch (Throwable t) {
              failure = failure == null ? t : failure;
            }
          }
          break;
        }
        try {
          handle(c, event);
        } catch (Throwable t) {
          // Leave the group cleanly (the native side still asks us to release).
          LOG.error("coordinator event '{}' failed; stopping", event.name(), t);
          failure = failure == null ? t : failure;
          stopRequested.set(true);
          c.stop();
          if (event.kind == CoordinatorEvent.Kind.RELEASE && !fence.containerConsuming()) {
            c.released();
          }
        }
      }
    } catch (Throwable t) {
      failure = t;
    } finally {
      fence.unregister(processorId);
      c.close();
      // After any computation still running (its answer to the closed handle is dropped).
      computer.execute(models::close);
      computer.shutdown();
    }
    finish(failure);
  }

  private void handle(NativeCoordinator c, CoordinatorEvent event) {
    switch (event.kind) {
      case LEADER:
        leading = event.leader();
        partitions.restart();
        LOG.info("Processor {} {} the leader", processorId, leading ? "is" : "is no longer");
        break;
      case COMPUTE:
        long v = event.version();
        String previous = event.previous();
        List<String> members = event.members();
        computer.execute(() -> compute(c, v, previous, members));
        break;
      case PREPARE:
        prepare(c, event.version(), parsed(event.version(), event.model()));
        break;
      case START:
        long version = event.version();
        start(version, parsed(version, event.model()), event.epoch());
        break;
      case FENCE:
        LOG.warn(
            "Processor {} lost contact with storage and the job moved on without it; stopping"
                + " its container",
            processorId);
        expire();
        break;
      case RELEASE:
        if (expire()) {
          c.released();
        } else {
          // The native side keeps the membership row meanwhile: others may take the partitions
          // only once it is gone.
          LOG.warn(
              "Container of processor {} did not stop; it is reported released only once it does",
              processorId);
          releasePending = true;
        }
        break;
      default:
        throw new IllegalStateException("unexpected coordinator event " + event.name());
    }
  }

  private JobModel parsed(long version, String json) {
    if (version != parsedVersion) {
      parsedModel = models.read(json);
      parsedVersion = version;
    }
    return parsedModel;
  }

  /** On the compute thread. */
  private void compute(NativeCoordinator c, long version, String previous, List<String> members) {
    try {
      String model;
      try {
        LOG.info("Computing job model version {} for processors {}", version, members);
        model = models.compute(members, models.read(previous));
      } catch (RuntimeException e) {
        LOG.warn("Computing job model version {} failed", version, e);
        c.computeFailed(version, String.valueOf(e));
        return;
      }
      c.computed(version, model);
    } catch (IllegalStateException closed) {
      // The coordinator stopped meanwhile: nobody waits for this model any more.
    }
  }

  private void prepare(NativeCoordinator c, long version, JobModel model) {
    ContainerModel next = model.getContainers().get(processorId);
    boolean changed = !Objects.equals(next, running) || (next != null && containerStopped);
    if (changed) {
      LOG.info(
          "Job model version {} changes processor {}'s work; stopping its container",
          version,
          processorId);
      if (!expire()) {
        // No acknowledgement: the native side keeps reporting the old version running, and the
        // leader's barrier times out rather than hand the partitions to others.
        LOG.error(
            "Container of processor {} did not stop; not acknowledging job model version {}",
            processorId,
            version);
        return;
      }
    }
    c.prepared(version, containerStopped);
  }

  private void start(long version, JobModel model, long epoch) {
    jobModel = model;
    jobModelVersion = version;
    ContainerModel next = model.getContainers().get(processorId);
    if (!containerStopped && !Objects.equals(next, running)) {
      // The protocol stops a container before a version that changes its work starts (the
      // prepare); should a version ever come without it, the running container must not go on
      // with work the new version gives to others.
      LOG.warn(
          "Job model version {} changes processor {}'s work while its container runs; "
              + "stopping the container first",
          version,
          processorId);
      if (!expire()) {
        LOG.error(
            "Processor {}'s container did not stop; version {} does not start here",
            processorId,
            version);
        return;
      }
    }
    if (next == null) {
      LOG.info("Job model version {} gives processor {} no work", version, processorId);
      return;
    }
    if (containerStopped) {
      LOG.info(
          "Starting job model version {} on processor {}: tasks {}",
          version,
          processorId,
          next.getTasks().keySet());
      if (!expired) {
        // A version owing no acknowledgement (the job's first) comes without a prepare.
        listener().onJobModelExpired();
      }
      running = next;
      containerStopped = false;
      expired = false;
      JobCoordinatorListener l = listener();
      // StreamProcessor creates the container (and its chooser) inside this call.
      fence.start(version, epoch, () -> l.onNewJobModel(processorId, model));
    }
  }

  /**
   * Stops the container (synchronously, in StreamProcessor) if one may be running; false if it is
   * still running afterwards. Its processing gate is closed first, whatever the outcome: a run loop
   * that survives chooses nothing more.
   */
  private boolean expire() {
    fence.disarm();
    ContainerStops.stopping(processorId, "its coordinator is stopping the container");
    if (!containerStopped || !expired) {
      // Also before the first model: StreamProcessor only accepts a model after an expiry.
      stopDuringExpiry = false;
      expiring = true;
      try {
        listener().onJobModelExpired();
      } finally {
        expiring = false;
      }
      expired = true;
    }
    running = null;
    containerStopped = true;
    return !stopDuringExpiry && !fence.containerConsuming();
  }

  private JobCoordinatorListener listener() {
    JobCoordinatorListener l = listener;
    if (l == null) {
      throw new IllegalStateException("setListener was not called before start");
    }
    return l;
  }

  private void finish(Throwable failure) {
    if (!finished.compareAndSet(false, true)) {
      return;
    }
    JobCoordinatorListener l = listener;
    if (l == null) {
      return;
    }
    ContainerStops.stopping(processorId, "its coordinator stopped");
    if (failure == null) {
      LOG.info("Coordinator of processor {} stopped", processorId);
      l.onCoordinatorStop();
    } else {
      LOG.error("Coordinator of processor {} failed", processorId, failure);
      l.onCoordinatorFailure(failure);
    }
  }
}
