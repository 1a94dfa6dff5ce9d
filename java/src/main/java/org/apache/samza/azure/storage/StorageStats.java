package org.apache.samza.azure.storage;

/** Counters of one storage client since it was opened. */
public final class StorageStats {
  /** Logical operations (each possibly several attempts). */
  public final long requests;

  public final long errors;
  public final long latencyMicros;

  StorageStats(long[] raw) {
    this.requests = raw[0];
    this.errors = raw[1];
    this.latencyMicros = raw[2];
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
