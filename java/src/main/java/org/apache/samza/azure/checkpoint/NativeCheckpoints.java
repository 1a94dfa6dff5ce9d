package org.apache.samza.azure.checkpoint;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;
import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/** The native checkpoint store of one container: a table per job, rows keyed by task. */
final class NativeCheckpoints extends NativeHandle {
  private NativeCheckpoints(long handle) {
    super(handle, Native::checkpointClose);
  }

  /** Validates the config (errors name the key); no request is made yet. */
  static NativeCheckpoints open(Map<String, String> config, String processorId) {
    return new NativeCheckpoints(ConfigArrays.open(config, processorId, Native::checkpointOpen));
  }

  String table() {
    return call(Native::checkpointTable);
  }

  /** One bounded attempt, or ({@code patient}) until storage answers or {@link #abandon}. */
  void createResources(boolean patient) {
    run(h -> Native.checkpointCreate(h, patient));
  }

  /** Gives up what is in flight and fails later calls at once; never blocks. */
  void abandon(String reason) {
    run(h -> Native.checkpointAbandon(h, reason));
  }

  void claim(String[] tasks, long generation) {
    run(h -> Native.checkpointClaim(h, tasks, generation));
  }

  /** The task's stored checkpoints by checkpoint version. */
  Map<Short, String> read(String task) {
    String[] raw = call(h -> Native.checkpointRead(h, task));
    return pairs(raw, Payloads.CHECKPOINT_READ, "version", Short::valueOf, "text", new HashMap<>());
  }

  void write(String task, int version, String text) {
    run(h -> Native.checkpointWrite(h, task, version, text));
  }

  /** Offsets (null for none) by row key from upstream samza-azure's table; empty if none. */
  Map<String, String> upstream(String task) {
    String[] raw = call(h -> Native.checkpointUpstream(h, task));
    return pairs(
        raw, Payloads.CHECKPOINT_UPSTREAM, "row_key", k -> k, "offset", new LinkedHashMap<>());
  }

  /**
   * The repeated groups of {@code raw}, laid out by {@code l}, as {@code key -> value} in {@code
   * out}.
   */
  private static <K> Map<K, String> pairs(
      String[] raw,
      PayloadLayout l,
      String key,
      Function<String, K> keyOf,
      String value,
      Map<K, String> out) {
    l.check(raw.length);
    int k = l.eachIndex(key);
    int v = l.eachIndex(value);
    for (int i = l.headSize(); i < raw.length; i += l.groupSize()) {
      out.put(keyOf.apply(raw[i + k]), raw[i + v]);
    }
    return out;
  }

  void clear(String[] tasks) {
    run(h -> Native.checkpointClear(h, tasks));
  }
}
