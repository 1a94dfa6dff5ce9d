package org.apache.samza.azure.coordinator;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Keeps a processor's containers from processing once its coordinator may have lost their
 * partitions.
 *
 * <p>The coordinator stops the container when no heartbeat reached storage within the self-fence
 * bound, but after a pause (SIGSTOP, a long GC) the container's threads wake at the same moment as
 * the coordinator's and could process a message first. So every container started by the
 * coordinator gets a {@link Gate}, armed with the fence epoch of its start, that Samza consults for
 * every message through {@link org.apache.samza.azure.FencedChooserFactory} (and, for tasks our
 * runner wraps, {@link FencedTasks}): past the self-fence deadline it lets nothing through, and
 * once the coordinator fenced (the epoch moved) or the container was expired, never again. Checking
 * costs a volatile read; the native deadline is consulted only when the cached one has passed.
 *
 * <p>The gate also tells whether its container still runs: its choosers are started when the
 * container starts consuming and stopped only after its run loop ended.
 */
public final class ProcessingFence {
  private static final Map<String, ProcessingFence> BY_PROCESSOR = new ConcurrentHashMap<>();
  private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(5);

  /** The gate of the container being created on this thread (StreamProcessor does it inline). */
  private static final ThreadLocal<Gate> CREATING = new ThreadLocal<>();

  private final NativeCoordinator coordinator;
  private volatile Gate current;
  private volatile boolean closed;
  private volatile long generation;

  /** Gates whose choosers were started and not yet stopped: containers still consuming. */
  private final AtomicInteger consuming = new AtomicInteger();

  private ProcessingFence(NativeCoordinator coordinator) {
    this.coordinator = coordinator;
  }

  static ProcessingFence register(String processorId, NativeCoordinator coordinator) {
    ProcessingFence f = new ProcessingFence(coordinator);
    BY_PROCESSOR.put(processorId, f);
    return f;
  }

  void unregister(String processorId) {
    closed = true;
    disarm();
    BY_PROCESSOR.remove(processorId, this);
  }

  /**
   * The JobModel version the running container started with: the generation that fences its tasks'
   * checkpoints against a later owner (0 before any).
   */
  public long generation() {
    return generation;
  }

  /** The fence of a processor coordinated by us in this JVM, or null. */
  public static ProcessingFence of(String processorId) {
    return BY_PROCESSOR.get(processorId);
  }

  /** The number of processors coordinated by us in this JVM. */
  public static int registered() {
    return BY_PROCESSOR.size();
  }

  /**
   * The gate of the container being created on the calling thread, else of the last container armed
   * by this processor; null if none.
   */
  public static Gate gateFor(String processorId) {
    Gate g = CREATING.get();
    if (g != null) {
      return g;
    }
    ProcessingFence f = processorId == null ? null : BY_PROCESSOR.get(processorId);
    return f == null ? null : f.current;
  }

  /**
   * Arms a gate for a container about to start with JobModel {@code version}, created by {@code
   * create} on this thread. {@code epoch} is the fence epoch when the coordinator decided the
   * start; if a self-fence happened since, the gate is closed from the start.
   */
  void start(long version, long epoch, Runnable create) {
    disarm();
    generation = version;
    Gate g = new Gate(this, epoch);
    g.check(false);
    current = g;
    CREATING.set(g);
    try {
      create.run();
    } finally {
      CREATING.remove();
    }
  }

  /** Closes the current container's gate for good: it processes nothing more, whatever happens. */
  void disarm() {
    Gate g = current;
    if (g != null) {
      g.open = false;
    }
  }

  /** True while a container of this processor may still be consuming (its run loop not ended). */
  boolean containerConsuming() {
    return consuming.get() > 0;
  }

  /** Whether the current container may process now (see {@link Gate#mayProcess()}). */
  public boolean mayProcess() {
    Gate g = current;
    return g != null && g.mayProcess();
  }

  /** Like {@link #mayProcess()} but never waits (see {@link Gate#mayChoose()}). */
  public boolean mayChoose() {
    Gate g = current;
    return g != null && g.mayChoose();
  }

  /** The native fence, or null once the coordinator is closed. */
  FenceReading nativeFence() {
    if (closed) {
      return null;
    }
    try {
      return coordinator.fence();
    } catch (IllegalStateException coordinatorClosed) {
      return null;
    }
  }

  /** One container's permission to process. */
  public static final class Gate {
    private final ProcessingFence fence;
    private final long epoch;
    private volatile boolean open = true;
    private volatile long allowedUntil = System.nanoTime();
    private final AtomicInteger started = new AtomicInteger();

    Gate(ProcessingFence fence, long epoch) {
      this.fence = fence;
      this.epoch = epoch;
    }

    /**
     * True when the container may process a message now. Past the self-fence deadline it waits for
     * the coordinator's verdict (a heartbeat getting through, or a fence); false once the container
     * was fenced or expired.
     */
    public boolean mayProcess() {
      return check(true);
    }

    /** Like {@link #mayProcess()} but never waits: false while the verdict is pending. */
    public boolean mayChoose() {
      return check(false);
    }

    private boolean check(boolean wait) {
      if (!open) {
        return false;
      }
      if (System.nanoTime() - allowedUntil < 0) {
        return true;
      }
      while (true) {
        FenceReading f = fence.nativeFence();
        if (f == null || f.epoch != epoch) {
          open = false;
          return false;
        }
        if (f.nanosLeft > 0) {
          allowedUntil = System.nanoTime() + f.nanosLeft;
          // An expiry may have closed the gate meanwhile.
          return open;
        }
        if (!wait || !open) {
          return false;
        }
        // Past the bound: processing is paused until the coordinator's verdict, a heartbeat
        // that got through with nothing moved (resume) or a fence (the epoch moves).
        LockSupport.parkNanos(POLL_NANOS);
      }
    }

    /** A chooser of this container started: its run loop consumes. */
    public void consumerStarted() {
      if (started.getAndIncrement() == 0) {
        fence.consuming.incrementAndGet();
      }
    }

    /** A chooser of this container stopped: its run loop ended. */
    public void consumerStopped() {
      if (started.decrementAndGet() == 0) {
        fence.consuming.decrementAndGet();
      }
    }
  }
}
