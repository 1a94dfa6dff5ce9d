package org.apache.samza.azure.eventhubs;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.samza.azure.testing.job.ProcessorFiles;
import org.apache.samza.azure.testing.job.ProcessorJvms;

/**
 * Runs {@link RelayApp} on several processors, one JVM each ({@link RelayProcessorMain}), with one
 * shared config, and reads back what their tasks recorded ({@link RelayTask}'s logs). The JVMs'
 * lifecycle is {@link ProcessorJvms}'; processor output goes to {@code <dir>/<id>.out}.
 */
final class RelayProcessors implements AutoCloseable {
  private final Path dir;
  private final Path configFile;
  private final ProcessorJvms jvms;

  RelayProcessors(Path dir, Map<String, String> config, List<String> jvmArgs, String classpath)
      throws IOException {
    this.dir = dir;
    this.jvms = new ProcessorJvms(dir, jvmArgs, classpath);
    Properties props = new Properties();
    props.putAll(config);
    props.put(RelayTask.LOG_DIR, dir.toString());
    configFile =
        ProcessorFiles.writeShared(dir, props, "org.apache.samza.checkpoint.OffsetManager");
  }

  void start(String id) throws IOException {
    jvms.start(id, RelayProcessorMain.class, configFile);
  }

  boolean isRunning(String id) {
    return jvms.isRunning(id);
  }

  /** SIGKILL, and waits until the process is gone. */
  void kill(String id) throws InterruptedException {
    jvms.kill(id);
  }

  /** SIGTERM to all of them at once (Samza stops each gracefully), then waits for each. */
  Map<String, Integer> stop(Collection<String> ids) throws InterruptedException {
    return jvms.stop(ids);
  }

  /** The last lines a processor printed, for failure messages. */
  String tail(String id, int lines) throws IOException {
    return jvms.tail(id, lines);
  }

  /** One line of a task log. */
  static final class Record {
    final String kind;
    final String processor;
    final int partition;
    final String offset;
    final long sequenceNumber;
    final String id;
    final long millis;

    Record(String line) {
      String[] f = line.split(" ");
      kind = f[0];
      processor = f[1];
      partition = Integer.parseInt(f[2]);
      boolean msg = kind.equals("msg");
      offset = msg ? f[3] : null;
      sequenceNumber = msg ? Long.parseLong(f[4]) : -1;
      id = msg ? f[5] : null;
      millis = Long.parseLong(f[msg ? 6 : 3]);
    }

    static boolean complete(String line) {
      String[] f = line.split(" ");
      return (f.length == 7 && f[0].equals("msg"))
          || (f.length == 4 && (f[0].equals("start") || f[0].equals("stop")));
    }
  }

  /** Everything every task recorded, per processor in the order written. */
  Map<String, List<Record>> records() throws IOException {
    Map<String, List<Record>> out = new TreeMap<>();
    File[] logs = dir.toFile().listFiles((d, name) -> name.endsWith(".log"));
    for (File log : logs == null ? new File[0] : logs) {
      List<Record> mine = new ArrayList<>();
      for (String line : Files.readAllLines(log.toPath(), StandardCharsets.UTF_8)) {
        if (Record.complete(line)) {
          mine.add(new Record(line));
        }
      }
      out.put(log.getName().substring(0, log.getName().length() - 4), mine);
    }
    return out;
  }

  /** Partition -> the running processors whose task for it has started and not stopped. */
  Map<Integer, List<String>> owners() throws IOException {
    Map<Integer, List<String>> owners = new TreeMap<>();
    for (Map.Entry<String, List<Record>> e : records().entrySet()) {
      if (!isRunning(e.getKey())) {
        continue;
      }
      Map<Integer, Boolean> open = new HashMap<>();
      for (Record r : e.getValue()) {
        if (r.kind.equals("start")) {
          open.put(r.partition, true);
        } else if (r.kind.equals("stop")) {
          open.remove(r.partition);
        }
      }
      for (Integer p : open.keySet()) {
        owners.computeIfAbsent(p, k -> new ArrayList<>()).add(e.getKey());
      }
    }
    return owners;
  }

  @Override
  public void close() {
    jvms.close();
  }
}
