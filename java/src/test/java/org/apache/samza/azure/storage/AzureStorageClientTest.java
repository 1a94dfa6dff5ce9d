package org.apache.samza.azure.storage;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.errors.LeaseHeldException;
import org.apache.samza.azure.errors.LeaseLostException;
import org.apache.samza.azure.errors.PreconditionFailedException;
import org.apache.samza.azure.errors.StorageAlreadyExistsException;
import org.apache.samza.azure.errors.StorageAuthenticationException;
import org.apache.samza.azure.errors.StorageNotFoundException;
import org.apache.samza.azure.jni.NativeLogBridge;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.Azurite;
import org.junit.Test;
import org.slf4j.LoggerFactory;

/** The Java API over the native core, against a real Azurite. */
public class AzureStorageClientTest extends AzuriteTest {
  private static final AtomicInteger N = new AtomicInteger();

  private static String container() {
    return "jt" + ProcessHandle.current().pid() + "x" + N.incrementAndGet();
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  public void leaseElectionBetweenTwoClients() {
    try (AzureStorageClient a = AzureStorageClient.open(azurite.config());
        AzureStorageClient b = AzureStorageClient.open(azurite.config())) {
      String c = container();
      assertTrue(a.ensureContainer(c));
      assertFalse(b.ensureContainer(c));
      a.createDocument(c, "leader", utf8("x"));
      String leaseA = a.acquireLease(c, "leader", 15, null);
      UUID.fromString(leaseA);
      try {
        b.acquireLease(c, "leader", 15, null);
        fail("two leaders");
      } catch (LeaseHeldException expected) {
        assertTrue(expected.getMessage(), expected.getMessage().contains(c + "/leader"));
      }
      a.renewLease(c, "leader", leaseA);
      assertEquals(0, b.breakLease(c, "leader", 0));
      try {
        a.renewLease(c, "leader", leaseA);
        fail("renew after break");
      } catch (LeaseLostException expected) {
        // the old leader learns it lost
      }
      String leaseB = b.acquireLease(c, "leader", -1, null);
      String changed = b.changeLease(c, "leader", leaseB, UUID.randomUUID().toString());
      assertNotEquals(leaseB, changed);
      b.releaseLease(c, "leader", changed);
      a.acquireLease(c, "leader", 60, null);
      assertTrue(a.stats().requests > 0);
    }
  }

  @Test
  public void fencedAndConditionalDocumentWrites() {
    try (AzureStorageClient leader = AzureStorageClient.open(azurite.config());
        AzureStorageClient rival = AzureStorageClient.open(azurite.config())) {
      String c = container();
      leader.ensureContainer(c);
      String v1 = leader.createDocument(c, "model", utf8("v1"));
      try {
        rival.createDocument(c, "model", utf8("other"));
        fail();
      } catch (StorageAlreadyExistsException expected) {
        // create-if-absent
      }
      assertNull("unchanged check", rival.checkDocument(c, "model", v1));
      assertNull("unchanged read", rival.readDocumentIfChanged(c, "model", v1));
      String lease = leader.acquireLease(c, "model", 15, null);
      String v2 = leader.replaceDocument(c, "model", utf8("v2"), v1, lease);
      try {
        leader.replaceDocument(c, "model", utf8("v3"), v1, lease);
        fail();
      } catch (PreconditionFailedException expected) {
        // stale ETag
      }
      try {
        rival.replaceDocument(c, "model", utf8("rogue"), v2, null);
        fail();
      } catch (LeaseLostException expected) {
        // no lease, no write
      }
      assertEquals(v2, rival.checkDocument(c, "model", v1));
      Document d = rival.readDocumentIfChanged(c, "model", v1);
      assertArrayEquals(utf8("v2"), d.body());
      assertEquals(v2, d.etag());
      Document whole = rival.readDocument(c, "model");
      assertEquals(v2, whole.etag());
      try {
        rival.readDocument(c, "absent");
        fail();
      } catch (StorageNotFoundException expected) {
        assertTrue(expected.getMessage(), expected.getMessage().contains("absent"));
      }
    }
  }

  @Test
  public void secretsNeverAppearInExceptionsOrLogs() throws Exception {
    String wrongKey = "SmF2YVNpZGVXcm9uZ0tleU11c3ROZXZlckJlUHJpbnRlZDEyMzQ1Njc4OTA=";
    String connect =
        azurite.connectionString().replace("AccountKey=" + Azurite.KEY, "AccountKey=" + wrongKey);
    Map<String, String> config = azurite.config();
    config.put("azure.storage.connect", connect);
    Logger root = (Logger) LoggerFactory.getLogger(NativeLogBridge.ROOT);
    ListAppender<ILoggingEvent> appender = new ListAppender<>();
    appender.start();
    root.addAppender(appender);
    ch.qos.logback.classic.Level before = root.getLevel();
    root.setLevel(ch.qos.logback.classic.Level.TRACE);
    NativeLogBridge.refreshLevel();
    List<String> texts = new ArrayList<>();
    try (AzureStorageClient c = AzureStorageClient.open(config)) {
      try {
        c.ensureContainer(container());
        fail();
      } catch (StorageAuthenticationException e) {
        texts.add(e.getMessage());
      }
      try {
        Map<String, String> bad = azurite.config();
        bad.put("azure.storage.connect", "AccountName=a;AccountKey=" + wrongKey + ";Oops");
        AzureStorageClient.open(bad);
        fail();
      } catch (AzureConfigException e) {
        texts.add(e.getMessage());
      }
      // A marker logged last: once it is through, everything before it is too.
      org.apache.samza.azure.jni.Native.testLog(2, "secret-test-marker");
      Await.until(
          "marker log line",
          10_000,
          () -> {
            // Appends hold the appender's lock (AppenderBase.doAppend), not the list's.
            synchronized (appender) {
              return appender.list.stream()
                  .anyMatch(e -> e.getFormattedMessage().contains("secret-test-marker"));
            }
          });
    } finally {
      root.setLevel(before);
      root.detachAppender(appender);
      NativeLogBridge.refreshLevel();
    }
    // Appends hold the appender's lock (AppenderBase.doAppend), not the list's.
    synchronized (appender) {
      assertTrue("TRACE produced native log lines", appender.list.size() > 3);
      for (ILoggingEvent e : appender.list) {
        texts.add(e.getFormattedMessage());
      }
    }
    for (String t : texts) {
      assertFalse("key leaked: " + t, t.contains(wrongKey));
    }
  }
}
