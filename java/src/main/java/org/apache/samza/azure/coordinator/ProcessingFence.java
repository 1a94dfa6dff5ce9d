package org.apache.samza.azure.coordinator;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Keeps a processor's tasks from processing once its coordinator may have lost its partitions.
 *
 * <p>The coordinator stops the container when no heartbeat reached storage within the self-fence
 * bound, but after a pause (SIGSTOP, a long GC) the container's threads wake at the same moment as
 * the coordinator's and could process a message first. So tasks ask this fence before each message
 * ({@link FencedTasks}): past the bound they wait, and once the coordinator has fenced (the epoch
 * moved) they fail the message instead of processing it, so it is neither processed nor committed
 * here. Checking costs a volatile read; the native deadline is consulted only when the cached one
 * has passed.
 */
public final class ProcessingFence {
  private static final Map<String, ProcessingFence> BY_PROCESSOR = new ConcurrentHashMap<>();
  private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(5);

  private final NativeCoordinator coordinator;
  private volatile long epoch = -1;
  private volatile long allowedUntil = Long.MIN_VALUE;
  private volatile boolean closed;
  private volatile long generation;

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

  /**
   * Called before a container starts with JobModel {@code version}: it may process until the next
   * fence, and its tasks' checkpoints are written under that version.
   */
  void arm(long version) {
    generation = version;
    long[] f = coordinator.fence();
    epoch = f[0];
    allowedUntil = System.nanoTime() + f[1];
  }

  /**
   * True when this processor may process now. Past the self-fence bound it waits for the
   * coordinator's verdict (a heartbeat getting through, or a fence) and returns false once the
   * container was fenced: its partitions may belong to another processor now.
   */
  public boolean mayProcess() {
    if (System.nanoTime() < allowedUntil) {
      return true;
    }
    while (true) {
      long[] f;
      try {
        f = closed ? null : coordinator.fence();
      } catch (IllegalStateException coordinatorClosed) {
        f = null;
      }
      if (f == null || f[0] != epoch) {
        return false;
      }
      if (f[1] > 0) {
        allowedUntil = System.nanoTime() + f[1];
        return true;
      }
      // Past the bound without a fence yet: the coordinator decides within one wake-up.
      LockSupport.parkNanos(POLL_NANOS);
    }
  }
}
