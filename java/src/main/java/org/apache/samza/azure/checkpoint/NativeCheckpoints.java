package org.apache.samza.azure.checkpoint;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
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
    Native.ensureLoaded();
    ConfigArrays c = new ConfigArrays(config);
    return new NativeCheckpoints(Native.checkpointOpen(c.keys, c.values, processorId));
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
    PayloadLayout l = Payloads.CHECKPOINT_READ;
    l.check(raw.length);
    int version = l.eachIndex("version");
    int text = l.eachIndex("text");
    Map<Short, String> out = new HashMap<>();
    for (int i = l.headSize(); i < raw.length; i += l.groupSize()) {
      out.put(Short.valueOf(raw[i + version]), raw[i + text]);
    }
    return out;
  }

  void write(String task, int version, String text) {
    run(h -> Native.checkpointWrite(h, task, version, text));
  }

  /** Offsets (null for none) by row key from upstream samza-azure's table; empty if none. */
  Map<String, String> upstream(String task) {
    String[] raw = call(h -> Native.checkpointUpstream(h, task));
    PayloadLayout l = Payloads.CHECKPOINT_UPSTREAM;
    l.check(raw.length);
    int rowKey = l.eachIndex("row_key");
    int offset = l.eachIndex("offset");
    Map<String, String> out = new LinkedHashMap<>();
    for (int i = l.headSize(); i < raw.length; i += l.groupSize()) {
      out.put(raw[i + rowKey], raw[i + offset]);
    }
    return out;
  }

  void clear(String[] tasks) {
    run(h -> Native.checkpointClear(h, tasks));
  }
}
