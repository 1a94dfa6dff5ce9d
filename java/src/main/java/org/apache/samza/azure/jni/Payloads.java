package org.apache.samza.azure.jni;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * The layout of every structured result of {@link Native}, the Java side of {@code
 * src/jni/payloads.rs}. Each has one decoder, which reads its fields by these names; {@code
 * PayloadContractTest} fails when a layout here and the library's differ.
 */
public final class Payloads {
  private Payloads() {}

  /** {@link Native#coordinatorMetrics}: the coordinator's counters and its storage client's. */
  public static final PayloadLayout COORDINATOR_METRICS =
      PayloadLayout.of(
          "coordinatorMetrics",
          "is_leader",
          "running_version",
          "seen_version",
          "rebalances",
          "barrier_timeouts",
          "heartbeat_failures",
          "lease_losses",
          "last_rebalance_ms",
          "fences",
          "storage_requests",
          "storage_errors",
          "storage_latency_micros");

  /** {@link Native#coordinatorFence}: how long the processor may still process. */
  public static final PayloadLayout COORDINATOR_FENCE =
      PayloadLayout.of("coordinatorFence", "epoch", "nanos_left");

  /** {@link Native#storageStats}: a storage client's counters since it was opened. */
  public static final PayloadLayout STORAGE_STATS =
      PayloadLayout.of("storageStats", "requests", "errors", "latency_micros");

  /** {@link Native#jobStorageNames}: where a job's state lives. */
  public static final PayloadLayout JOB_STORAGE_NAMES =
      PayloadLayout.of(
          "jobStorageNames", "container", "table", "checkpoint_table", "job_model_blob");

  /** {@link Native#checkpointRead}: one stored checkpoint of a task per group. */
  public static final PayloadLayout CHECKPOINT_READ =
      PayloadLayout.of("checkpointRead").thenEach("version", "text");

  /** {@link Native#checkpointUpstream}: one row of upstream samza-azure's table per group. */
  public static final PayloadLayout CHECKPOINT_UPSTREAM =
      PayloadLayout.of("checkpointUpstream").thenEach("row_key", "offset");

  /** {@link Native#pollLogs}: the number of records dropped, then one log record per group. */
  public static final PayloadLayout POLL_LOGS =
      PayloadLayout.of("pollLogs", "dropped").thenEach("level", "target", "message");

  /** {@link Native#docRead}, {@link Native#docReadIfChanged}: a document's body and ETag. */
  public static final PayloadLayout DOCUMENT = PayloadLayout.of("document", "body", "etag");

  /** {@link Native#coordinatorNextEvent}, one layout per kind; the first field is the kind. */
  public static final PayloadLayout EVENT_LEADER =
      PayloadLayout.of("event.leader", "kind", "leader");

  public static final PayloadLayout EVENT_COMPUTE =
      PayloadLayout.of("event.compute", "kind", "version", "previous").thenEach("member");
  public static final PayloadLayout EVENT_PREPARE =
      PayloadLayout.of("event.prepare", "kind", "version", "model");
  public static final PayloadLayout EVENT_START =
      PayloadLayout.of("event.start", "kind", "version", "model", "epoch");
  public static final PayloadLayout EVENT_FENCE = PayloadLayout.of("event.fence", "kind");
  public static final PayloadLayout EVENT_RELEASE = PayloadLayout.of("event.release", "kind");
  public static final PayloadLayout EVENT_STOPPED =
      PayloadLayout.of("event.stopped", "kind", "failed");

  /** Every layout, in the library's order. */
  static final List<PayloadLayout> ALL =
      Collections.unmodifiableList(
          Arrays.asList(
              COORDINATOR_METRICS,
              COORDINATOR_FENCE,
              STORAGE_STATS,
              JOB_STORAGE_NAMES,
              CHECKPOINT_READ,
              CHECKPOINT_UPSTREAM,
              POLL_LOGS,
              DOCUMENT,
              EVENT_LEADER,
              EVENT_COMPUTE,
              EVENT_PREPARE,
              EVENT_START,
              EVENT_FENCE,
              EVENT_RELEASE,
              EVENT_STOPPED));

  /** The layout of an event of {@code kind}. */
  public static PayloadLayout event(String kind) {
    for (PayloadLayout l : ALL) {
      if (l.name.equals("event." + kind)) {
        return l;
      }
    }
    throw new IllegalStateException("unknown coordinator event " + kind);
  }

  /** A boolean field: the library sends "1" or "0". */
  public static boolean flag(String field) {
    return "1".equals(field);
  }
}
