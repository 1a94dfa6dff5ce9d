package org.apache.samza.azure.jni;

/**
 * Every native method of the core, in one place. The library binds its implementations to these
 * declarations when it loads, and loading fails if the two sides differ in any name or signature
 * (see {@link NativeContract} and docs/native.md). Handles are {@code long}s owned by a {@link
 * NativeHandle} subclass; call these only through those wrappers, which guarantee a handle is live
 * for the duration of a call.
 *
 * <p>Errors arrive as subclasses of {@link
 * org.apache.samza.azure.errors.AzureCoordinationException}; a native panic arrives as {@link
 * org.apache.samza.azure.errors.NativePanicException}.
 */
public final class Native {
  static {
    NativeLibrary.load();
    NativeContract.check(Native.class, registeredNatives());
    NativeLogBridge.start();
  }

  private Native() {}

  /** Forces loading (and the log bridge) without doing anything else. */
  public static void ensureLoaded() {
    // The static initialiser did the work.
  }

  /**
   * Name and JNI descriptor ({@code storageStats(J)[J}) of every method the library registered for
   * this class; {@link NativeContract} checks them against the declarations here.
   */
  static native String[] registeredNatives();

  /**
   * {@code name: head,fields | repeated,fields} of every structured result, as the library encodes
   * them; {@code PayloadContractTest} compares them with {@link Payloads}.
   */
  static native String[] payloadLayouts();

  // ---- runtime, logging, diagnostics ----

  public static native String version();

  static native void initLogging(int maxLevel);

  static native void setLogLevel(int maxLevel);

  /** Laid out as {@link Payloads#POLL_LOGS}, or null if nothing arrived in time. */
  static native String[] pollLogs(long timeoutMillis, int max);

  /** Stops the shared runtime; later native calls fail with an exception. Idempotent. */
  public static native void shutdownRuntime(long timeoutMillis);

  public static native boolean isRuntimeRunning();

  /** A round trip through the boundary and the async runtime that does nothing. */
  public static native void noop();

  /** Returns {@code size} bytes produced on the async runtime. */
  public static native byte[] echo(int size);

  /** Fails with the exception class for {@code code}; for tests of the error mapping. */
  public static native void testThrow(String code, String message);

  /** Panics natively, on the runtime or on the calling thread; for tests. */
  public static native void testPanic(String message, boolean onRuntime);

  /** Emits a native log record (1 = ERROR ... 5 = TRACE); for tests. */
  public static native void testLog(int level, String message);

  // ---- storage (use AzureStorageClient) ----

  public static native long storageOpen(String[] keys, String[] values);

  public static native void storageClose(long handle);

  /** Laid out as {@link Payloads#STORAGE_STATS}. */
  public static native long[] storageStats(long handle);

  public static native boolean ensureContainer(long handle, String container);

  public static native String leaseAcquire(
      long handle, String container, String blob, int seconds, String proposedLeaseId);

  public static native void leaseRenew(long handle, String container, String blob, String leaseId);

  public static native void leaseRelease(
      long handle, String container, String blob, String leaseId);

  public static native long leaseBreak(
      long handle, String container, String blob, int periodSeconds);

  public static native String leaseChange(
      long handle, String container, String blob, String leaseId, String proposedLeaseId);

  public static native String docCreate(long handle, String container, String blob, byte[] body);

  /** Laid out as {@link Payloads#DOCUMENT}. */
  public static native Object[] docRead(long handle, String container, String blob);

  /**
   * Laid out as {@link Payloads#DOCUMENT}, or null while the blob is still at {@code knownEtag}.
   */
  public static native Object[] docReadIfChanged(
      long handle, String container, String blob, String knownEtag);

  public static native String docCheck(
      long handle, String container, String blob, String knownEtag);

  public static native String docReplace(
      long handle, String container, String blob, byte[] body, String ifMatch, String leaseId);

  public static native void docDelete(
      long handle, String container, String blob, String ifMatch, String leaseId);

  // ---- coordinator (use NativeCoordinator) ----

  public static native long coordinatorStart(String[] keys, String[] values, String processorId);

  public static native void coordinatorClose(long handle);

  /** An event laid out as {@link Payloads#event}, or null if nothing came in time. */
  public static native String[] coordinatorNextEvent(long handle, long timeoutMillis);

  /** Throws the error the coordinator stopped with, if any. */
  public static native void coordinatorThrowFailure(long handle);

  /** Exactly one of {@code model} and {@code failure} is non-null. */
  public static native void coordinatorComputed(
      long handle, long version, String model, String failure);

  public static native void coordinatorPrepared(long handle, long version, boolean stopped);

  public static native void coordinatorReleased(long handle);

  /** Leader only: recompute the model for the same members. */
  public static native void coordinatorRebalance(long handle);

  public static native void coordinatorStop(long handle);

  /** Laid out as {@link Payloads#COORDINATOR_METRICS}. */
  public static native long[] coordinatorMetrics(long handle);

  /** Laid out as {@link Payloads#COORDINATOR_FENCE}; cheap. */
  public static native long[] coordinatorFence(long handle);

  /**
   * Where a job's state lives, laid out as {@link Payloads#JOB_STORAGE_NAMES}; {@code jobId} null
   * for a config without {@code job.id}. Read by the same rule as the config (configuration.md).
   */
  public static native String[] jobStorageNames(String jobName, String jobId);

  // ---- checkpoints (use org.apache.samza.azure.checkpoint) ----

  public static native long checkpointOpen(String[] keys, String[] values, String processorId);

  public static native void checkpointClose(long handle);

  public static native String checkpointTable(long handle);

  /**
   * Creates the table if absent: one bounded attempt, or, {@code patient}, until storage answers.
   */
  public static native void checkpointCreate(long handle, boolean patient);

  /**
   * The container is stopping: whatever is in flight on this handle gives up at once, and every
   * later call fails at once. Never blocks.
   */
  public static native void checkpointAbandon(long handle, String reason);

  /** Takes the tasks for {@code generation} (0: no generation, nothing fenced). */
  public static native void checkpointClaim(long handle, String[] tasks, long generation);

  /** Laid out as {@link Payloads#CHECKPOINT_READ}. */
  public static native String[] checkpointRead(long handle, String task);

  public static native void checkpointWrite(long handle, String task, int version, String text);

  /** Upstream samza-azure's rows, laid out as {@link Payloads#CHECKPOINT_UPSTREAM}. */
  public static native String[] checkpointUpstream(long handle, String task);

  public static native void checkpointClear(long handle, String[] tasks);

  // ---- coordination utils (use org.apache.samza.azure.coordination) ----

  public static native long utilsOpen(String[] keys, String[] values, String groupId);

  public static native void utilsClose(long handle);

  /** Starts competing for a lease of the group; returns a lease handle. */
  public static native long utilsLease(long handle, String name, long acquireMillis);

  /** Waits for leadership (or any change); returns 0 follower, 1 leader, 2 stopped. */
  public static native int leaseAwait(long lease, boolean untilLeader, long timeoutMillis);

  public static native void leaseStop(long lease);

  public static native void leaseClose(long lease);

  public static native void latchCountDown(long handle, String latchId, String participantId);

  public static native boolean latchAwait(
      long handle, String latchId, int size, long timeoutMillis);

  public static native long clusterRegister(long handle, String processorId);

  public static native void clusterMemberClose(long member);

  public static native void clusterUnregister(long handle, String processorId);

  public static native int clusterSize(long handle);
}
