package org.apache.samza.azure.coordinator;

import java.util.Map;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

/**
 * The native protocol task of one processor (membership, leadership, JobModel document, barrier).
 * It runs on the native runtime; this object only exchanges events and answers with it. All methods
 * are thread-safe and none blocks except {@link #nextEvent}.
 */
final class NativeCoordinator extends NativeHandle {
  private NativeCoordinator(long handle) {
    super(handle, Native::coordinatorClose);
  }

  /** Validates the config (errors name the key) and starts the protocol. */
  static NativeCoordinator start(Map<String, String> config, String processorId) {
    return new NativeCoordinator(ConfigArrays.open(config, processorId, Native::coordinatorStart));
  }

  /** The next event, or null if none came within {@code timeoutMillis}. */
  CoordinatorEvent nextEvent(long timeoutMillis) {
    return call(h -> CoordinatorEvent.fromNative(Native.coordinatorNextEvent(h, timeoutMillis)));
  }

  void throwFailure() {
    run(Native::coordinatorThrowFailure);
  }

  void computed(long version, String model) {
    run(h -> Native.coordinatorComputed(h, version, model, null));
  }

  void computeFailed(long version, String failure) {
    run(h -> Native.coordinatorComputed(h, version, null, failure));
  }

  void prepared(long version, boolean stopped) {
    run(h -> Native.coordinatorPrepared(h, version, stopped));
  }

  void released() {
    run(Native::coordinatorReleased);
  }

  void requestRebalance() {
    run(Native::coordinatorRebalance);
  }

  void stop() {
    run(Native::coordinatorStop);
  }

  CoordinatorCounters metrics() {
    return call(h -> CoordinatorCounters.fromNative(Native.coordinatorMetrics(h)));
  }

  FenceReading fence() {
    return call(h -> FenceReading.fromNative(Native.coordinatorFence(h)));
  }
}
