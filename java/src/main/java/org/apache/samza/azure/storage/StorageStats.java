package org.apache.samza.azure.storage;

import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/** Counters of one storage client since it was opened ({@link Payloads#STORAGE_STATS}). */
public final class StorageStats {
  /** Logical operations (each possibly several attempts). */
  public final long requests;

  public final long errors;
  public final long latencyMicros;

  StorageStats(long[] raw) {
    PayloadLayout l = Payloads.STORAGE_STATS;
    l.check(raw.length);
    this.requests = raw[l.index("requests")];
    this.errors = raw[l.index("errors")];
    this.latencyMicros = raw[l.index("latency_micros")];
  }

  @Override
  public String toString() {
    return "StorageStats{requests="
        + requests
        + ", errors="
        + errors
        + ", latencyMicros="
        + latencyMicros
        + "}";
  }
}
