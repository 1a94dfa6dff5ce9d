package org.apache.samza.azure.coordinator;

import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * One reading of the native coordinator's counters and its storage client's, decoded by name
 * ({@link Payloads#COORDINATOR_METRICS}). Counters are cumulative since the coordinator started.
 */
final class CoordinatorCounters {
  private static final PayloadLayout L = Payloads.COORDINATOR_METRICS;

  final long isLeader;

  /** The JobModel version the container runs (0 while none). */
  final long runningVersion;

  /** The newest JobModel version seen. */
  final long seenVersion;

  final long rebalances;
  final long barrierTimeouts;
  final long heartbeatFailures;

  /** Times leadership was lost without asking (renew refused or out of time). */
  final long leaseLosses;

  final long lastRebalanceMs;

  /** Self-fences: the fence epoch. */
  final long fences;

  final long storageRequests;
  final long storageErrors;
  final long storageLatencyMicros;

  private CoordinatorCounters(long[] raw) {
    L.check(raw.length);
    isLeader = raw[L.index("is_leader")];
    runningVersion = raw[L.index("running_version")];
    seenVersion = raw[L.index("seen_version")];
    rebalances = raw[L.index("rebalances")];
    barrierTimeouts = raw[L.index("barrier_timeouts")];
    heartbeatFailures = raw[L.index("heartbeat_failures")];
    leaseLosses = raw[L.index("lease_losses")];
    lastRebalanceMs = raw[L.index("last_rebalance_ms")];
    fences = raw[L.index("fences")];
    storageRequests = raw[L.index("storage_requests")];
    storageErrors = raw[L.index("storage_errors")];
    storageLatencyMicros = raw[L.index("storage_latency_micros")];
  }

  static CoordinatorCounters fromNative(long[] raw) {
    return new CoordinatorCounters(raw);
  }
}
