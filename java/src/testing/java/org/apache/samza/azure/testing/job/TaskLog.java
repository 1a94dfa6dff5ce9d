package org.apache.samza.azure.testing.job;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import org.apache.samza.config.Config;

/**
 * The line log test tasks write for the harness to read back: {@code <dir>/<processor.id>.log},
 * where {@code dirKey} names the config key of the directory. One per JVM (one processor each);
 * each line is flushed at once, so a kill -9 loses nothing written before it.
 */
public final class TaskLog {
  private static final Object LOCK = new Object();
  private static Writer log;

  private TaskLog() {}

  public static void append(Config config, String dirKey, String line) {
    synchronized (LOCK) {
      try {
        if (log == null) {
          String path = config.get(dirKey) + "/" + config.get("processor.id") + ".log";
          log = new OutputStreamWriter(new FileOutputStream(path, true), StandardCharsets.UTF_8);
        }
        log.write(line + "\n");
        log.flush();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
