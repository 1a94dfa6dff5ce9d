package org.apache.samza.azure.jni;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiConsumer;
import java.util.function.Predicate;
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

  /** The native levels, 1 (ERROR) to 5 (TRACE) in order, by the names records carry them under. */
  private enum Level {
    ERROR(Logger::isErrorEnabled, Logger::error),
    WARN(Logger::isWarnEnabled, Logger::warn),
    INFO(Logger::isInfoEnabled, Logger::info),
    DEBUG(Logger::isDebugEnabled, Logger::debug),
    TRACE(Logger::isTraceEnabled, Logger::trace);

    final Predicate<Logger> enabled;
    final BiConsumer<Logger, String> log;

    Level(Predicate<Logger> enabled, BiConsumer<Logger, String> log) {
      this.enabled = enabled;
      this.log = log;
    }

    /** A record's level; one not named here is logged as trace. */
    static Level named(String name) {
      for (Level l : values()) {
        if (l.name().equals(name)) {
          return l;
        }
      }
      return TRACE;
    }
  }

  /** The most detailed level {@value #ROOT} has enabled (0: none). */
  static int enabledLevel() {
    Logger root = LoggerFactory.getLogger(ROOT);
    int enabled = 0;
    for (Level l : Level.values()) {
      if (l.enabled.test(root)) {
        enabled = l.ordinal() + 1;
      }
    }
    return enabled;
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
      Level.named(batch[i + level]).log.accept(log, batch[i + text]);
    }
  }
}
