package org.apache.samza.azure.coordination;

import java.util.Map;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

/** The native side of one coordination group: storage client and names. */
final class NativeGroup extends NativeHandle {
  private NativeGroup(long handle) {
    super(handle, Native::utilsClose);
  }

  static NativeGroup open(Map<String, String> config, String groupId) {
    return new NativeGroup(ConfigArrays.open(config, groupId, Native::utilsOpen));
  }

  NativeLease lease(String name, long acquireMillis) {
    return new NativeLease(call(h -> Native.utilsLease(h, name, acquireMillis)));
  }

  void countDown(String latchId, String participantId) {
    run(h -> Native.latchCountDown(h, latchId, participantId));
  }

  boolean awaitLatch(String latchId, int size, long timeoutMillis) {
    return call(h -> Native.latchAwait(h, latchId, size, timeoutMillis));
  }

  NativeHandle register(String processorId) {
    return new NativeClusterMember(call(h -> Native.clusterRegister(h, processorId)));
  }

  /** A registered cluster member; closing stops its heartbeats. */
  static final class NativeClusterMember extends NativeHandle {
    NativeClusterMember(long handle) {
      super(handle, Native::clusterMemberClose);
    }
  }

  void unregister(String processorId) {
    run(h -> Native.clusterUnregister(h, processorId));
  }

  int clusterSize() {
    return call(Native::clusterSize);
  }
}
