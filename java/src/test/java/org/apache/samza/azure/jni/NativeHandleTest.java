package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.azure.storage.AzureStorageClient;
import org.apache.samza.azure.testing.Await;
import org.junit.Test;

/** Handle lifetime: idempotent close, no use after close, safety net for a forgotten close. */
public class NativeHandleTest {
  private static Map<String, String> offlineConfig() {
    // Opening does no I/O, so no storage is needed here.
    return Collections.singletonMap("azure.storage.connect", "UseDevelopmentStorage=true");
  }

  @Test
  public void closeIsIdempotentAndUseAfterCloseThrows() {
    AzureStorageClient c = AzureStorageClient.open(offlineConfig());
    assertEquals(0, c.stats().requests);
    c.close();
    c.close();
    assertTrue(c.isClosed());
    try {
      c.stats();
      fail("use after close");
    } catch (IllegalStateException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("closed"));
    }
  }

  @Test
  public void errorsNameTheHandlesClassEvenWhenItIsAnonymous() {
    assertEquals("AzureStorageClient", NativeHandle.kind(AzureStorageClient.class));
    Object anonymous = new Object() {};
    assertEquals("NativeHandleTest$1", NativeHandle.kind(anonymous.getClass()));
  }

  @Test
  public void forgottenCloseIsFreedBySafetyNet() throws InterruptedException {
    long before = NativeHandle.safetyNetReleases();
    for (int i = 0; i < 5; i++) {
      AzureStorageClient.open(offlineConfig()).stats();
    }
    // Unreachable now; GC enqueues the phantoms and the cleaner thread frees them.
    Await.until(
        "safety net to free 5 leaked clients",
        30_000,
        () -> {
          System.gc();
          return NativeHandle.safetyNetReleases() - before >= 5;
        });
  }

  @Test
  public void closedClientsAreNotCountedAsLeaks() throws InterruptedException {
    long before = NativeHandle.safetyNetReleases();
    for (int i = 0; i < 20; i++) {
      AzureStorageClient.open(offlineConfig()).close();
    }
    // Let a leaked one mark that the queue has been processed past our closed ones.
    AzureStorageClient.open(offlineConfig());
    Await.until(
        "the leaked client to be collected",
        30_000,
        () -> {
          System.gc();
          return NativeHandle.safetyNetReleases() > before;
        });
    assertEquals("only the one leaked client", before + 1, NativeHandle.safetyNetReleases());
  }

  @Test
  public void closeRacingCallsNeverCrashes() throws Exception {
    for (int round = 0; round < 20; round++) {
      AzureStorageClient c = AzureStorageClient.open(offlineConfig());
      CountDownLatch started = new CountDownLatch(4);
      AtomicInteger calls = new AtomicInteger();
      AtomicReference<Throwable> unexpected = new AtomicReference<>();
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        Thread th =
            new Thread(
                () -> {
                  started.countDown();
                  try {
                    while (true) {
                      c.stats();
                      calls.incrementAndGet();
                    }
                  } catch (IllegalStateException closed) {
                    // expected once close wins
                  } catch (Throwable other) {
                    unexpected.set(other);
                  }
                });
        th.start();
        threads.add(th);
      }
      started.await();
      c.close();
      for (Thread th : threads) {
        th.join(10_000);
        assertFalse("caller stuck after close", th.isAlive());
      }
      assertEquals(null, unexpected.get());
    }
  }

  @Test
  public void badConfigNamesTheKey() {
    Map<String, String> config = new HashMap<>();
    config.put("azure.storage.connect", "UseDevelopmentStorage=true");
    config.put("azure.storage.retry.max.attempts", "zero");
    try {
      AzureStorageClient.open(config);
      fail();
    } catch (org.apache.samza.azure.errors.AzureConfigException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("azure.storage.retry.max.attempts"));
      assertTrue(e.getMessage(), e.getMessage().contains("'zero'"));
    }
    try {
      AzureStorageClient.open(Collections.<String, String>emptyMap());
      fail();
    } catch (org.apache.samza.azure.errors.AzureConfigException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("azure.storage.connect"));
    }
  }
}
