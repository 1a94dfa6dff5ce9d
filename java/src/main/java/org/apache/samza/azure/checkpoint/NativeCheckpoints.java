package org.apache.samza.azure.checkpoint;

import java.util.Map;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

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

  String[] read(String task) {
    return call(h -> Native.checkpointRead(h, task));
  }

  void write(String task, int version, String text) {
    run(h -> Native.checkpointWrite(h, task, version, text));
  }

  String[] upstream(String task) {
    return call(h -> Native.checkpointUpstream(h, task));
  }

  void clear(String[] tasks) {
    run(h -> Native.checkpointClear(h, tasks));
  }
}
