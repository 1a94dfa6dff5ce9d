package org.apache.samza.azure.jni;

import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves native log records into slf4j. One Java daemon thread pulls batches from the native queue,
 * so no native thread ever attaches to the JVM. Logger names are the Rust module path with {@code
 * ::} replaced by {@code .}, under {@value #ROOT}; the native side forwards only what the {@value
 * #ROOT} logger has enabled (re-read with {@link #refreshLevel()}).
 */
public final class NativeLogBridge {
  public static final String ROOT = "samza_azure_coordinator";
  private static final Logger BRIDGE_LOG = LoggerFactory.getLogger(NativeLogBridge.class);
  private static final AtomicBoolean STARTED = new AtomicBoolean();

  private NativeLogBridge() {}

  static void start() {
    if (!STARTED.compareAndSet(false, true)) {
      return;
    }
    Native.initLogging(enabledLevel());
    Thread t = new Thread(NativeLogBridge::run, "samza-azure-native-log");
    t.setDaemon(true);
    t.start();
  }

  /** Re-reads the slf4j level of {@value #ROOT} and applies it to the native side. */
  public static void refreshLevel() {
    Native.setLogLevel(enabledLevel());
  }

  /** Overrides the forwarded level (0 = off, 1 = ERROR ... 5 = TRACE). */
  public static void setLevel(int level) {
    Native.setLogLevel(level);
  }

  static int enabledLevel() {
    Logger root = LoggerFactory.getLogger(ROOT);
    if (root.isTraceEnabled()) {
      return 5;
    } else if (root.isDebugEnabled()) {
      return 4;
    } else if (root.isInfoEnabled()) {
      return 3;
    } else if (root.isWarnEnabled()) {
      return 2;
    } else if (root.isErrorEnabled()) {
      return 1;
    }
    return 0;
  }

  private static void run() {
    while (true) {
      try {
        String[] batch = Native.pollLogs(1000, 256);
        if (batch != null) {
          dispatch(batch);
        }
      } catch (Throwable t) {
        // Polling needs no runtime and cannot fail for long; keep the bridge alive.
        BRIDGE_LOG.error("native log bridge failed", t);
      }
    }
  }

  private static void dispatch(String[] batch) {
    PayloadLayout l = Payloads.POLL_LOGS;
    l.check(batch.length);
    long dropped = Long.parseLong(batch[l.index("dropped")]);
    if (dropped > 0) {
      BRIDGE_LOG.warn("{} native log records were dropped because the queue was full", dropped);
    }
    int level = l.eachIndex("level");
    int target = l.eachIndex("target");
    int text = l.eachIndex("message");
    for (int i = l.headSize(); i < batch.length; i += l.groupSize()) {
      String name = batch[i + target].replace("::", ".");
      Logger log = LoggerFactory.getLogger(name.startsWith(ROOT) ? name : ROOT + "." + name);
      String message = batch[i + text];
      switch (batch[i + level]) {
        case "ERROR":
          log.error(message);
          break;
        case "WARN":
          log.warn(message);
          break;
        case "INFO":
          log.info(message);
          break;
        case "DEBUG":
          log.debug(message);
          break;
        default:
          log.trace(message);
      }
    }
  }
}
