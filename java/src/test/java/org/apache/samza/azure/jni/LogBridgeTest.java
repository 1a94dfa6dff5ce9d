package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.util.ArrayList;
import java.util.List;
import org.apache.samza.azure.testing.Await;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;
import org.slf4j.LoggerFactory;

/** Native tracing events reach slf4j, level-filtered. */
public class LogBridgeTest {
  private final ListAppender<ILoggingEvent> appender = new ListAppender<>();
  private Logger root;

  @Before
  public void attach() {
    Native.ensureLoaded();
    root = (Logger) LoggerFactory.getLogger(NativeLogBridge.ROOT);
    appender.start();
    root.addAppender(appender);
  }

  @After
  public void detach() {
    root.detachAppender(appender);
    NativeLogBridge.refreshLevel();
  }

  private List<ILoggingEvent> events() {
    // Appends hold the appender's lock (AppenderBase.doAppend), not the list's.
    synchronized (appender) {
      return new ArrayList<>(appender.list);
    }
  }

  private ILoggingEvent find(String text) {
    for (ILoggingEvent e : events()) {
      if (e.getFormattedMessage().contains(text)) {
        return e;
      }
    }
    return null;
  }

  @Test
  public void nativeLogLineArrivesThroughSlf4j() throws InterruptedException {
    NativeLogBridge.setLevel(3);
    Native.testLog(3, "hello from rust 4711");
    Await.until("native INFO line in slf4j", 10_000, () -> find("hello from rust 4711") != null);
    ILoggingEvent e = find("hello from rust 4711");
    assertEquals(Level.INFO, e.getLevel());
    assertEquals("samza_azure_coordinator.jni.diagnostics", e.getLoggerName());
    assertEquals("samza-azure-native-log", e.getThreadName());
  }

  @Test
  public void levelsBelowTheThresholdAreNotForwarded() throws InterruptedException {
    NativeLogBridge.setLevel(2);
    Native.testLog(4, "debug-should-be-filtered");
    Native.testLog(3, "info-should-be-filtered");
    Native.testLog(2, "warn-should-arrive");
    // Records arrive in order, so once the WARN is here the others would have been too.
    Await.until("WARN line", 10_000, () -> find("warn-should-arrive") != null);
    assertEquals(Level.WARN, find("warn-should-arrive").getLevel());
    assertFalse(
        events().stream().anyMatch(e -> e.getFormattedMessage().contains("should-be-filtered")));
  }
}
