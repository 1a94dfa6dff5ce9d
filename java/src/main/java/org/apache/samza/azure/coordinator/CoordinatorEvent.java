package org.apache.samza.azure.coordinator;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * One event of the native coordinator, decoded from its array by the field names of its layout
 * ({@link Payloads}, {@code event.*}). A getter for a field its kind does not carry throws.
 */
final class CoordinatorEvent {
  enum Kind {
    LEADER,
    COMPUTE,
    PREPARE,
    START,
    FENCE,
    RELEASE,
    STOPPED
  }

  final Kind kind;
  private final String[] raw;
  private final PayloadLayout layout;

  private CoordinatorEvent(String[] raw) {
    this.layout = Payloads.event(raw[0]);
    layout.check(raw.length);
    this.kind = Kind.valueOf(raw[0].toUpperCase(Locale.ROOT));
    this.raw = raw;
  }

  /** Null stays null: no event came in time. */
  static CoordinatorEvent fromNative(String[] raw) {
    return raw == null ? null : new CoordinatorEvent(raw);
  }

  /** The kind as the library names it, for logs. */
  String name() {
    return raw[0];
  }

  /** LEADER: whether this processor is now the leader. */
  boolean leader() {
    return Payloads.flag(field("leader"));
  }

  /** COMPUTE, PREPARE, START: the JobModel version. */
  long version() {
    return Long.parseLong(field("version"));
  }

  /** COMPUTE: the last published model ("" if none). */
  String previous() {
    return field("previous");
  }

  /** COMPUTE: the processors to compute the model for. */
  List<String> members() {
    return Arrays.asList(raw).subList(layout.headSize(), raw.length);
  }

  /** PREPARE, START: the model of {@link #version()}, as JSON. */
  String model() {
    return field("model");
  }

  /**
   * START: the fence epoch when the engine decided the start; a self-fence after that decision must
   * not be adopted as the new container's epoch.
   */
  long epoch() {
    return Long.parseLong(field("epoch"));
  }

  /** STOPPED: whether the coordinator stopped with an error. */
  boolean failed() {
    return Payloads.flag(field("failed"));
  }

  private String field(String name) {
    return raw[layout.index(name)];
  }
}
