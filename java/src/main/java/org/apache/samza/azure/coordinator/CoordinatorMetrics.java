package org.apache.samza.azure.coordinator;

import java.util.LinkedHashMap;
import java.util.Map;
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

  /** Gauges copied from native counters: {published name, field of CoordinatorCounters}. */
  private static final String[][] GAUGES = {
    {"is-leader", "is_leader"},
    // The JobModel version the container runs (0 while none).
    {"job-model-version", "running_version"},
    {"last-rebalance-duration-ms", "last_rebalance_ms"},
  };

  /** Counters copied from native counters: {published name, field of CoordinatorCounters}. */
  private static final String[][] COUNTERS = {
    {"rebalances", "rebalances"},
    {"barrier-timeouts", "barrier_timeouts"},
    {"heartbeat-failures", "heartbeat_failures"},
    // Times leadership was lost without asking; the published name predates it and stays.
    {"lease-renew-failures", "lease_losses"},
    // The fence epoch.
    {"self-fences", "fences"},
    {"storage-requests", "storage_requests"},
    {"storage-errors", "storage_errors"},
  };

  /** By the native field each copies. */
  private final Map<String, Gauge<Long>> gauges = new LinkedHashMap<>();

  private final Map<String, Counter> counters = new LinkedHashMap<>();
  private final Timer storageLatency;

  /** Counted on the Java side: the leader saw an input's partition count change. */
  final Counter partitionCountChanges;

  private long seenRequests;
  private long seenLatencyMicros;

  CoordinatorMetrics(MetricsRegistry registry) {
    for (String[] g : GAUGES) {
      gauges.put(g[1], registry.newGauge(GROUP, g[0], 0L));
    }
    for (String[] c : COUNTERS) {
      counters.put(c[1], registry.newCounter(GROUP, c[0]));
    }
    storageLatency = registry.newTimer(GROUP, "storage-latency-us");
    partitionCountChanges = registry.newCounter(GROUP, "partition-count-changes");
  }

  /** {@code m} is decoded from {@code Native.coordinatorMetrics} by its layout (Payloads). */
  synchronized void update(CoordinatorCounters m) {
    gauges.forEach((field, gauge) -> gauge.set(m.get(field)));
    counters.forEach((field, counter) -> counter.set(m.get(field)));
    long totalRequests = m.get("storage_requests");
    long totalLatencyMicros = m.get("storage_latency_micros");
    long requests = totalRequests - seenRequests;
    if (requests > 0) {
      // Mean latency of the requests since the last update.
      storageLatency.update((totalLatencyMicros - seenLatencyMicros) / requests);
    }
    seenRequests = totalRequests;
    seenLatencyMicros = totalLatencyMicros;
  }
}
