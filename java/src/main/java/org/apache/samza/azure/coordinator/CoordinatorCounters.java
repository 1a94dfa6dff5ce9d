package org.apache.samza.azure.coordinator;

import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * One reading of the native coordinator's counters and its storage client's, read by their field
 * names in {@link Payloads#COORDINATOR_METRICS}. Counters are cumulative since the coordinator
 * started.
 */
final class CoordinatorCounters {
  private static final PayloadLayout L = Payloads.COORDINATOR_METRICS;

  private final long[] raw;

  private CoordinatorCounters(long[] raw) {
    L.check(raw.length);
    this.raw = raw;
  }

  /**
   * The field {@code name} of the layout (e.g. {@code seen_version}); throws for an unknown one.
   */
  long get(String name) {
    return raw[L.index(name)];
  }

  static CoordinatorCounters fromNative(long[] raw) {
    return new CoordinatorCounters(raw);
  }
}
