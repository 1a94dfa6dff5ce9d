package org.apache.samza.azure.coordinator;

import org.apache.samza.metrics.Counter;
import org.apache.samza.metrics.Gauge;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.metrics.Timer;

/**
 * The coordinator's metrics in Samza's registry, group {@value #GROUP}. Native counters are
 * cumulative; they are copied here each time the event thread wakes (at least every 500 ms).
 */
public final class CoordinatorMetrics {
  public static final String GROUP = "azure-coordinator";

  private final Gauge<Long> isLeader;
  private final Gauge<Long> jobModelVersion;
  private final Counter rebalances;
  private final Counter barrierTimeouts;
  private final Counter heartbeatFailures;
  private final Counter leaseRenewFailures;
  private final Counter selfFences;
  private final Counter storageRequests;
  private final Counter storageErrors;
  private final Timer storageLatency;
  private final Gauge<Long> lastRebalanceMs;

  /** Counted on the Java side: the leader saw an input's partition count change. */
  final Counter partitionCountChanges;

  private long seenRequests;
  private long seenLatencyMicros;

  CoordinatorMetrics(MetricsRegistry registry) {
    isLeader = registry.newGauge(GROUP, "is-leader", 0L);
    jobModelVersion = registry.newGauge(GROUP, "job-model-version", 0L);
    rebalances = registry.newCounter(GROUP, "rebalances");
    barrierTimeouts = registry.newCounter(GROUP, "barrier-timeouts");
    heartbeatFailures = registry.newCounter(GROUP, "heartbeat-failures");
    // Counts CoordinatorCounters.leaseLosses; the published name predates it and stays.
    leaseRenewFailures = registry.newCounter(GROUP, "lease-renew-failures");
    selfFences = registry.newCounter(GROUP, "self-fences");
    storageRequests = registry.newCounter(GROUP, "storage-requests");
    storageErrors = registry.newCounter(GROUP, "storage-errors");
    storageLatency = registry.newTimer(GROUP, "storage-latency-us");
    lastRebalanceMs = registry.newGauge(GROUP, "last-rebalance-duration-ms", 0L);
    partitionCountChanges = registry.newCounter(GROUP, "partition-count-changes");
  }

  /** {@code m} is decoded from {@code Native.coordinatorMetrics} by its layout (Payloads). */
  synchronized void update(CoordinatorCounters m) {
    isLeader.set(m.isLeader);
    jobModelVersion.set(m.runningVersion);
    rebalances.set(m.rebalances);
    barrierTimeouts.set(m.barrierTimeouts);
    heartbeatFailures.set(m.heartbeatFailures);
    leaseRenewFailures.set(m.leaseLosses);
    lastRebalanceMs.set(m.lastRebalanceMs);
    selfFences.set(m.fences);
    storageRequests.set(m.storageRequests);
    storageErrors.set(m.storageErrors);
    long requests = m.storageRequests - seenRequests;
    if (requests > 0) {
      // Mean latency of the requests since the last update.
      storageLatency.update((m.storageLatencyMicros - seenLatencyMicros) / requests);
    }
    seenRequests = m.storageRequests;
    seenLatencyMicros = m.storageLatencyMicros;
  }
}
