package org.apache.samza.azure.checkpoint;

import org.apache.samza.metrics.Counter;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.metrics.Timer;

/** The checkpoint manager's metrics in Samza's registry, group {@value #GROUP}. */
final class CheckpointMetrics {
  static final String GROUP = "azure-checkpoint";

  final Counter writes;
  final Timer writeLatency;
  final Timer readLatency;

  /** Writes storage refused because a newer owner holds the task. */
  final Counter fencedWrites;

  final Counter failedWrites;

  /** Tasks whose checkpoint came from upstream samza-azure's table. */
  final Counter upstreamReads;

  CheckpointMetrics(MetricsRegistry registry) {
    writes = registry.newCounter(GROUP, "checkpoint-writes");
    writeLatency = registry.newTimer(GROUP, "write-latency-us");
    readLatency = registry.newTimer(GROUP, "read-latency-us");
    fencedWrites = registry.newCounter(GROUP, "fenced-writes");
    failedWrites = registry.newCounter(GROUP, "failed-writes");
    upstreamReads = registry.newCounter(GROUP, "upstream-reads");
  }
}
