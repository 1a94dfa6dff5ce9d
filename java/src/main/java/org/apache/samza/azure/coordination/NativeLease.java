package org.apache.samza.azure.coordination;

import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

/** A lease being competed for (and renewed while held) on the native runtime. */
final class NativeLease extends NativeHandle {
  static final int FOLLOWER = 0;
  static final int LEADER = 1;
  static final int STOPPED = 2;

  NativeLease(long handle) {
    super(handle, Native::leaseClose);
  }

  int awaitLeader(long timeoutMillis) {
    return call(h -> Native.leaseAwait(h, true, timeoutMillis));
  }

  int awaitChange(long timeoutMillis) {
    return call(h -> Native.leaseAwait(h, false, timeoutMillis));
  }

  /** Releases the lease if held and stops competing; then frees the native object. */
  void stopAndClose() {
    if (!isClosed()) {
      run(Native::leaseStop);
      close();
    }
  }
}
