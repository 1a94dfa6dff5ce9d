package org.apache.samza.azure.checkpoint;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Tells a processor's checkpoint managers that the container they serve is being stopped, so that
 * whatever they wait for on storage gives up at once and the container stops within {@code
 * task.shutdown.ms}: a checkpoint write otherwise waits out a storage outage for as long as it
 * lasts.
 *
 * <p>Process-wide, keyed by processor id (the coordinator and the container's manager share no
 * object). The coordinator calls {@link #stopping} before it stops the container (self-fence, a new
 * job model, its own stop); the runner calls it when the application is killed. Samza creates a
 * container's checkpoint manager on the coordinator's thread while it hands over the job model, so
 * a manager is stopped by every call made after it was created, even one made before it started:
 * each manager remembers the count of calls at its creation.
 */
public final class ContainerStops {
  private static final Map<String, AtomicLong> STOPS = new ConcurrentHashMap<>();
  private static final Map<String, Set<AzureCheckpointManager>> STARTED = new ConcurrentHashMap<>();
  private static final Map<String, String> LAST_REASON = new ConcurrentHashMap<>();

  private ContainerStops() {}

  /**
   * Every container of {@code processorId} created so far is being stopped: its checkpoint manager
   * abandons what it waits for, and fails what it is asked later, at once.
   */
  public static void stopping(String processorId, String reason) {
    synchronized (ContainerStops.class) {
      LAST_REASON.put(processorId, reason);
      STOPS.computeIfAbsent(processorId, k -> new AtomicLong()).incrementAndGet();
    }
    Set<AzureCheckpointManager> started = STARTED.get(processorId);
    if (started != null) {
      for (AzureCheckpointManager m : started) {
        m.abandon(reason);
      }
    }
  }

  /** How many times containers of this processor were stopped (a manager's creation mark). */
  static long count(String processorId) {
    AtomicLong n = STOPS.get(processorId);
    return n == null ? 0 : n.get();
  }

  /**
   * Registers a started manager created at mark {@code createdAt}; returns the reason its container
   * was stopped since (it must abandon at once), else null.
   */
  static String register(String processorId, long createdAt, AzureCheckpointManager m) {
    STARTED.computeIfAbsent(processorId, k -> ConcurrentHashMap.newKeySet()).add(m);
    synchronized (ContainerStops.class) {
      return count(processorId) != createdAt ? LAST_REASON.get(processorId) : null;
    }
  }

  static void unregister(String processorId, AzureCheckpointManager m) {
    Set<AzureCheckpointManager> started = STARTED.get(processorId);
    if (started != null) {
      started.remove(m);
    }
  }
}
