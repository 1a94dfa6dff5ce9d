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
    leaseRenewFailures = registry.newCounter(GROUP, "lease-renew-failures");
    selfFences = registry.newCounter(GROUP, "self-fences");
    storageRequests = registry.newCounter(GROUP, "storage-requests");
    storageErrors = registry.newCounter(GROUP, "storage-errors");
    storageLatency = registry.newTimer(GROUP, "storage-latency-us");
    lastRebalanceMs = registry.newGauge(GROUP, "last-rebalance-duration-ms", 0L);
    partitionCountChanges = registry.newCounter(GROUP, "partition-count-changes");
  }

  /**
   * {@code m} is the array {@code Native.coordinatorMetrics} returns; its layout is written beside
   * its builder, {@code Java_org_apache_samza_azure_jni_Native_coordinatorMetrics} in
   * src/jni/coordinator.rs.
   */
  synchronized void update(long[] m) {
    isLeader.set(m[0]);
    jobModelVersion.set(m[1]);
    rebalances.set(m[3]);
    barrierTimeouts.set(m[4]);
    heartbeatFailures.set(m[5]);
    leaseRenewFailures.set(m[6]);
    lastRebalanceMs.set(m[7]);
    selfFences.set(m[8]);
    storageRequests.set(m[9]);
    storageErrors.set(m[10]);
    long requests = m[9] - seenRequests;
    if (requests > 0) {
      // Mean latency of the requests since the last update.
      storageLatency.update((m[11] - seenLatencyMicros) / requests);
    }
    seenRequests = m[9];
    seenLatencyMicros = m[11];
  }
}
