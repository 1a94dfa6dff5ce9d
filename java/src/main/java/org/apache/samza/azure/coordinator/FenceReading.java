package org.apache.samza.azure.coordinator;

import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * The native fence ({@link Payloads#COORDINATOR_FENCE}): the fence epoch, and how long the
 * processor may still process before it must wait for the coordinator's verdict.
 */
final class FenceReading {
  private static final PayloadLayout L = Payloads.COORDINATOR_FENCE;
  // Positions resolved once: a gate past its cached deadline reads the fence often.
  private static final int EPOCH = L.index("epoch");
  private static final int NANOS_LEFT = L.index("nanos_left");

  /** Moves on every self-fence. */
  final long epoch;

  /** Nanoseconds left before processing must stop; 0 or less once past. */
  final long nanosLeft;

  private FenceReading(long[] raw) {
    L.check(raw.length);
    epoch = raw[EPOCH];
    nanosLeft = raw[NANOS_LEFT];
  }

  static FenceReading fromNative(long[] raw) {
    return new FenceReading(raw);
  }
}
