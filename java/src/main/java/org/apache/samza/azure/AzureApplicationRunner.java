package org.apache.samza.azure;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.SamzaException;
import org.apache.samza.application.SamzaApplication;
import org.apache.samza.application.descriptors.ApplicationDescriptor;
import org.apache.samza.application.descriptors.ApplicationDescriptorImpl;
import org.apache.samza.application.descriptors.ApplicationDescriptorUtil;
import org.apache.samza.azure.checkpoint.ContainerStops;
import org.apache.samza.azure.coordinator.FencedTasks;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.errors.AzureCoordinationException;
import org.apache.samza.azure.errors.FencedWriteException;
import org.apache.samza.azure.errors.LeaseLostException;
import org.apache.samza.azure.errors.OutcomeUnknownException;
import org.apache.samza.azure.errors.PreconditionFailedException;
import org.apache.samza.azure.errors.TransientStorageException;
import org.apache.samza.config.ApplicationConfig;
import org.apache.samza.config.Config;
import org.apache.samza.config.JobConfig;
import org.apache.samza.config.MapConfig;
import org.apache.samza.context.ExternalContext;
import org.apache.samza.coordinator.CoordinationConstants;
import org.apache.samza.coordinator.CoordinationUtils;
import org.apache.samza.execution.LocalJobPlanner;
import org.apache.samza.job.ApplicationStatus;
import org.apache.samza.metrics.MetricsReporter;
import org.apache.samza.processor.StreamProcessor;
import org.apache.samza.runtime.ApplicationRunner;
import org.apache.samza.runtime.ProcessorContext;
import org.apache.samza.runtime.ProcessorIdGenerator;
import org.apache.samza.runtime.ProcessorLifecycleListener;
import org.apache.samza.task.TaskFactory;
import org.apache.samza.task.TaskFactoryUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a Samza application (high- or low-level API) in this JVM, coordinated through Azure Storage:
 * {@code app.runner.class=org.apache.samza.azure.AzureApplicationRunner}.
 *
 * <p>Samza 1.8's LocalApplicationRunner only accepts the coordinator factories it knows, so this
 * runner does the same job with {@link AzureJobCoordinatorFactory}: it plans the jobs with
 * LocalJobPlanner (its constructor without the whitelist) and starts one StreamProcessor per job.
 * The processor id is {@code processor.id}, else the {@code app.processor-id-generator.class}
 * generator, else a random UUID.
 *
 * <p>Samza ends a StreamProcessor whenever its container fails. When the failure came from
 * coordination rather than from the job (storage out of reach, a task's checkpoints claimed by a
 * newer owner, a lost lease; see {@link #rejoinable}), the runner starts a fresh StreamProcessor
 * with the same id, which rejoins through the coordinator, after a backoff that doubles from
 * {@value #REJOIN_FIRST_MS} ms to {@value #REJOIN_MAX_MS} ms. Any other failure (the job's own
 * code, configuration, credentials) ends the application as before.
 */
public final class AzureApplicationRunner implements ApplicationRunner {
  /** Samza's key (deprecated there in favour of id generators, still what it reads). */
  static final String PROCESSOR_ID = "processor.id";

  private static final Logger LOG = LoggerFactory.getLogger(AzureApplicationRunner.class);
  private static final String FACTORY_KEY = "job.coordinator.factory";
  private static final String METADATA_STORE_FACTORY = "metadata.store.factory";

  // Samza's own signatures use the raw types.
  @SuppressWarnings("rawtypes")
  private final ApplicationDescriptorImpl<? extends ApplicationDescriptor> appDesc;

  private final Set<StreamProcessor> processors = ConcurrentHashMap.newKeySet();
  private final Set<String> processorIds = ConcurrentHashMap.newKeySet();
  private final CountDownLatch finished = new CountDownLatch(1);
  private final AtomicInteger live = new AtomicInteger();
  private final AtomicInteger toStart = new AtomicInteger();
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private volatile ApplicationStatus status = ApplicationStatus.New;

  static final long REJOIN_FIRST_MS = 1000;
  static final long REJOIN_MAX_MS = 60_000;

  /** Error codes of failures that coordination caused and a rejoin can cure. */
  private static final Set<String> REJOINABLE =
      new HashSet<>(
          Arrays.asList(
              FencedWriteException.CODE,
              TransientStorageException.CODE,
              OutcomeUnknownException.CODE,
              LeaseLostException.CODE,
              PreconditionFailedException.CODE));

  private Optional<ExternalContext> externalContext = Optional.empty();

  /** Set by kill(); guarded by this. */
  private boolean killed;

  /** Runs rejoins after their backoff; created on the first. Guarded by this. */
  private ScheduledExecutorService rejoinTimer;

  /** Processors waiting to rejoin, by the listener of the one that failed. Guarded by this. */
  private final Set<Listener> pendingRejoins = new HashSet<>();

  @SuppressWarnings("rawtypes")
  public AzureApplicationRunner(SamzaApplication app, Config config) {
    this.appDesc = ApplicationDescriptorUtil.getAppDescriptor(app, withOurFactory(config));
  }

  static Config withOurFactory(Config config) {
    String factory = config.get(FACTORY_KEY);
    String ours = AzureJobCoordinatorFactory.class.getName();
    if (factory != null && !factory.equals(ours)) {
      throw new AzureConfigException(
          FACTORY_KEY + ": AzureApplicationRunner runs only " + ours + ", found " + factory);
    }
    Map<String, String> copy = new HashMap<>(config);
    copy.put(FACTORY_KEY, ours);
    return new MapConfig(copy);
  }

  static String processorId(Config config) {
    ApplicationConfig app = new ApplicationConfig(config);
    String id = app.getProcessorId();
    if (id != null && !id.trim().isEmpty()) {
      return id;
    }
    String generator = app.getAppProcessorIdGeneratorClass();
    if (generator != null && !generator.trim().isEmpty()) {
      try {
        return ((ProcessorIdGenerator) Class.forName(generator).newInstance())
            .generateProcessorId(config);
      } catch (ReflectiveOperationException | ClassCastException e) {
        throw new AzureConfigException(
            ApplicationConfig.APP_PROCESSOR_ID_GENERATOR_CLASS
                + ": expected a ProcessorIdGenerator class with a public no-argument constructor,"
                + " found "
                + generator);
      }
    }
    return UUID.randomUUID().toString();
  }

  @Override
  public void run(ExternalContext externalContext) {
    try {
      // With a coordination-utils instance, LocalJobPlanner creates intermediate streams under
      // a lock and records that in the store of metadata.store.factory (ZooKeeper's by
      // default); without one, every processor creates them, which Samza supports (stream
      // creation is idempotent). So ours is passed only when the user chose a store.
      String participant = UUID.randomUUID().toString();
      CoordinationUtils utils =
          appDesc.getConfig().containsKey(METADATA_STORE_FACTORY)
              ? new AzureCoordinationUtilsFactory()
                  .getCoordinationUtils(
                      CoordinationConstants.APPLICATION_RUNNER_PATH_SUFFIX,
                      participant,
                      appDesc.getConfig())
              : null;
      List<JobConfig> jobs = new LocalJobPlanner(appDesc, utils, participant, null).prepareJobs();
      if (jobs.isEmpty()) {
        throw new SamzaException("No jobs to run.");
      }
      this.externalContext = Optional.ofNullable(externalContext);
      for (JobConfig job : jobs) {
        processors.add(createProcessor(job, 0));
      }
      live.set(processors.size());
      toStart.set(processors.size());
      for (StreamProcessor p : processors) {
        p.start();
      }
    } catch (Throwable t) {
      processors.forEach(StreamProcessor::stop);
      status = ApplicationStatus.unsuccessfulFinish(t);
      finished.countDown();
      throw new SamzaException("Failed to start application: " + t.getMessage(), t);
    }
  }

  /**
   * @param rejoins how many times in a row this processor was started again after a coordination
   *     failure (0: first start)
   */
  private StreamProcessor createProcessor(Config config, int rejoins) {
    String processorId = processorId(config);
    // The container's config is this one: its checkpoint manager finds the processor (and so
    // the generation fencing its writes) by processor.id.
    Map<String, String> withId = new HashMap<>(config);
    withId.put(PROCESSOR_ID, processorId);
    // Every message of every task type passes the processing fence.
    FencedChooserFactory.install(withId);
    Config jobConfig = new MapConfig(withId);
    // Each message first checks that this processor still holds its partitions.
    TaskFactory<?> taskFactory =
        FencedTasks.wrap(TaskFactoryUtil.getTaskFactory(appDesc), processorId, jobConfig);
    Map<String, MetricsReporter> reporters = new HashMap<>();
    appDesc
        .getMetricsReporterFactories()
        .forEach(
            (name, factory) ->
                reporters.put(name, factory.getMetricsReporter(name, processorId, jobConfig)));
    processorIds.add(processorId);
    LOG.info("Starting job {} as processor {}", new JobConfig(jobConfig).getName(), processorId);
    return new StreamProcessor(
        processorId,
        jobConfig,
        reporters,
        taskFactory,
        appDesc.getApplicationContainerContextFactory(),
        appDesc.getApplicationTaskContextFactory(),
        externalContext,
        sp -> new Listener(sp, jobConfig, processorId, rejoins),
        null,
        null);
  }

  @Override
  public void kill() {
    List<Listener> pending;
    synchronized (this) {
      killed = true;
      pending = new ArrayList<>(pendingRejoins);
      pendingRejoins.clear();
      if (rejoinTimer != null) {
        rejoinTimer.shutdownNow();
      }
    }
    // A processor waiting to rejoin ends instead.
    pending.forEach(l -> l.ended(null));
    processorIds.forEach(id -> ContainerStops.stopping(id, "the application is being stopped"));
    processors.forEach(StreamProcessor::stop);
  }

  /**
   * True when {@code t} came from coordination and a fresh processor can cure it: somewhere in its
   * causes is one of our exceptions saying storage was out of reach or answered ambiguously, or
   * that another processor now owns what this one wrote to (the coordinator will hand out work
   * again when it rejoins). Not for our configuration, credential or internal errors, nor for
   * anything else (the job's code).
   */
  static boolean rejoinable(Throwable t) {
    Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Throwable c = t; c != null && seen.add(c); c = c.getCause()) {
      if (c instanceof AzureCoordinationException
          && REJOINABLE.contains(((AzureCoordinationException) c).code())) {
        return true;
      }
    }
    return false;
  }

  /** The wait before rejoin number {@code n} (1-based) of a processor in a row. */
  static long rejoinDelayMillis(int n) {
    return Math.min(REJOIN_MAX_MS, REJOIN_FIRST_MS << Math.min(Math.max(n - 1, 0), 16));
  }

  @Override
  public ApplicationStatus status() {
    return status;
  }

  @Override
  public void waitForFinish() {
    waitForFinish(Duration.ZERO);
  }

  @Override
  public boolean waitForFinish(Duration timeout) {
    try {
      if (timeout.toMillis() < 1) {
        finished.await();
        return true;
      }
      return finished.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new SamzaException("interrupted waiting for the application to finish", e);
    }
  }

  private final class Listener implements ProcessorLifecycleListener {
    private final StreamProcessor processor;
    private final ProcessorLifecycleListener user;
    private final Config jobConfig;
    private final String processorId;
    private final int rejoins;

    /** When its first container started (System.nanoTime), or null. */
    private volatile Long startedAt;

    Listener(StreamProcessor processor, Config jobConfig, String processorId, int rejoins) {
      this.processor = processor;
      this.jobConfig = jobConfig;
      this.processorId = processorId;
      this.rejoins = rejoins;
      this.user =
          appDesc
              .getProcessorLifecycleListenerFactory()
              .createInstance(new ProcessorContext() {}, jobConfig);
    }

    @Override
    public void beforeStart() {
      user.beforeStart();
    }

    @Override
    public void afterStart() {
      startedAt = System.nanoTime();
      if (toStart.decrementAndGet() == 0) {
        status = ApplicationStatus.Running;
      }
      user.afterStart();
    }

    @Override
    public void afterStop() {
      try {
        user.afterStop();
      } finally {
        ended(null);
      }
    }

    @Override
    public void afterFailure(Throwable t) {
      try {
        user.afterFailure(t);
      } finally {
        if (rejoinable(t) && scheduleRejoin(t)) {
          return;
        }
        if (failure.compareAndSet(null, t)) {
          // One processor failing fails the application: stop the others.
          processors.stream().filter(p -> p != processor).forEach(StreamProcessor::stop);
        }
        ended(t);
      }
    }

    /**
     * Starts a fresh processor with the same id after a backoff, in place of this one; false when
     * the application is being killed.
     */
    private boolean scheduleRejoin(Throwable t) {
      Long started = startedAt;
      // A processor that ran longer than the longest backoff starts the count again.
      boolean ranLong =
          started != null
              && System.nanoTime() - started > TimeUnit.MILLISECONDS.toNanos(REJOIN_MAX_MS);
      int n = ranLong ? 1 : rejoins + 1;
      long delay = rejoinDelayMillis(n);
      synchronized (AzureApplicationRunner.this) {
        if (killed) {
          return false;
        }
        if (rejoinTimer == null) {
          rejoinTimer =
              Executors.newSingleThreadScheduledExecutor(
                  r -> {
                    Thread th = new Thread(r, "samza-azure-rejoin");
                    th.setDaemon(true);
                    return th;
                  });
        }
        processors.remove(processor);
        pendingRejoins.add(this);
        LOG.error(
            "Processor {} failed because of coordination, not the job: {}. It rejoins as a fresh"
                + " processor in {} ms (rejoin {} in a row)",
            processorId,
            t,
            delay,
            n,
            t);
        rejoinTimer.schedule(() -> rejoin(n, t), delay, TimeUnit.MILLISECONDS);
      }
      return true;
    }

    private void rejoin(int n, Throwable cause) {
      synchronized (AzureApplicationRunner.this) {
        if (!pendingRejoins.remove(this)) {
          return; // killed meanwhile, which ended it
        }
        try {
          StreamProcessor next = createProcessor(jobConfig, n);
          processors.add(next);
          LOG.warn("Processor {} rejoins (rejoin {} in a row)", processorId, n);
          next.start();
          return;
        } catch (RuntimeException e) {
          e.addSuppressed(cause);
          if (failure.compareAndSet(null, e)) {
            processors.forEach(StreamProcessor::stop);
          }
        }
      }
      ended(failure.get());
    }

    private void ended(Throwable t) {
      processors.remove(processor);
      if (live.decrementAndGet() == 0) {
        Throwable first = failure.get();
        status =
            first == null
                ? ApplicationStatus.SuccessfulFinish
                : ApplicationStatus.unsuccessfulFinish(first);
        finished.countDown();
      }
    }
  }
}
