package org.apache.samza.azure;

import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.samza.azure.coordinator.ProcessingFence;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.config.Config;
import org.apache.samza.config.TaskConfig;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.system.chooser.MessageChooser;
import org.apache.samza.system.chooser.MessageChooserFactory;
import org.apache.samza.system.chooser.RoundRobinChooserFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code task.chooser.class=org.apache.samza.azure.FencedChooserFactory}: the processing fence for
 * every task type. Samza's run loop asks the chooser for every message it processes, whatever the
 * application (high- or low-level, any thread pool); this one chooses nothing while the processor's
 * {@link ProcessingFence} is past its deadline, and nothing ever again once the container was
 * fenced or expired. Buffered messages stay with the wrapped chooser (no message is lost or
 * skipped; the run loop idles for {@code task.max.idle.ms} and asks again).
 *
 * <p>It wraps the chooser factory named by {@value #WRAPPED} (default Samza's round robin). {@link
 * AzureJobCoordinator} refuses to start without it; {@link AzureApplicationRunner} sets it itself,
 * moving a configured {@code task.chooser.class} to {@value #WRAPPED}.
 */
public final class FencedChooserFactory implements MessageChooserFactory {
  /** The chooser factory whose choices are fenced. */
  public static final String WRAPPED = "job.coordinator.azure.chooser.class";

  private static final Logger LOG = LoggerFactory.getLogger(FencedChooserFactory.class);

  /**
   * Sets {@code task.chooser.class} to this factory in {@code config}, moving a chooser configured
   * there to {@value #WRAPPED}.
   */
  public static void install(Map<String, String> config) {
    String configured = config.get(TaskConfig.MESSAGE_CHOOSER_CLASS_NAME);
    String ours = FencedChooserFactory.class.getName();
    if (configured != null && !configured.equals(ours)) {
      String wrapped = config.get(WRAPPED);
      if (wrapped != null && !wrapped.equals(configured)) {
        throw new AzureConfigException(
            TaskConfig.MESSAGE_CHOOSER_CLASS_NAME
                + " and "
                + WRAPPED
                + " name two different choosers ("
                + configured
                + ", "
                + wrapped
                + "): set only "
                + WRAPPED);
      }
      config.put(WRAPPED, configured);
    }
    config.put(TaskConfig.MESSAGE_CHOOSER_CLASS_NAME, ours);
  }

  @Override
  public MessageChooser getChooser(Config config, MetricsRegistry registry) {
    String name = config.get(WRAPPED, RoundRobinChooserFactory.class.getName());
    if (name.equals(FencedChooserFactory.class.getName())) {
      throw new AzureConfigException(WRAPPED + " must name another chooser factory, found " + name);
    }
    MessageChooserFactory wrapped;
    try {
      wrapped = (MessageChooserFactory) Class.forName(name).newInstance();
    } catch (ReflectiveOperationException | ClassCastException e) {
      throw new AzureConfigException(
          WRAPPED
              + ": expected a MessageChooserFactory with a public no-argument constructor, found "
              + name);
    }
    String processorId = config.get(AzureApplicationRunner.PROCESSOR_ID);
    ProcessingFence.Gate gate = ProcessingFence.gateFor(processorId);
    if (gate == null && ProcessingFence.registered() > 0) {
      // Our coordinator runs in this JVM, but this container was not started by it in a way
      // that tells which processor it belongs to: refuse to process rather than run unfenced.
      throw new AzureConfigException(
          "FencedChooserFactory cannot tell which coordinator started this container: create"
              + " containers through AzureJobCoordinator's listener calls, or set "
              + AzureApplicationRunner.PROCESSOR_ID);
    }
    if (gate == null) {
      LOG.warn("No AzureJobCoordinator in this JVM: messages are chosen unfenced");
      return wrapped.getChooser(config, registry);
    }
    return new Fenced(wrapped.getChooser(config, registry), gate);
  }

  private static final class Fenced implements MessageChooser {
    private final MessageChooser wrapped;
    private final ProcessingFence.Gate gate;
    private final AtomicBoolean started = new AtomicBoolean();

    Fenced(MessageChooser wrapped, ProcessingFence.Gate gate) {
      this.wrapped = wrapped;
      this.gate = gate;
    }

    @Override
    public void start() {
      if (started.compareAndSet(false, true)) {
        gate.consumerStarted();
      }
      wrapped.start();
    }

    @Override
    public void stop() {
      try {
        wrapped.stop();
      } finally {
        if (started.compareAndSet(true, false)) {
          gate.consumerStopped();
        }
      }
    }

    @Override
    public void register(SystemStreamPartition ssp, String offset) {
      wrapped.register(ssp, offset);
    }

    @Override
    public void update(IncomingMessageEnvelope envelope) {
      wrapped.update(envelope);
    }

    @Override
    public IncomingMessageEnvelope choose() {
      // Nothing while fenced: the envelopes stay buffered in the wrapped chooser.
      return gate.mayChoose() ? wrapped.choose() : null;
    }
  }
}
