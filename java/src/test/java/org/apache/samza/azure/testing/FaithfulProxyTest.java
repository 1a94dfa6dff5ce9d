package org.apache.samza.azure.testing;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import org.apache.samza.azure.AzuriteTest;
import org.junit.Test;

/** The Java launcher of the Azure-faithful proxy, against a real Azurite. */
public class FaithfulProxyTest extends AzuriteTest {

  private static boolean connects(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", port), 1_000);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  @Test
  public void aRefuseOutageRefusesOneClientAndEndsByItself() throws Exception {
    try (FaithfulProxy proxy = FaithfulProxy.start(azurite, 2, 7, "exact")) {
      assertEquals(2, proxy.clients());
      assertTrue(proxy.connectionString(1).contains(":" + proxy.tablePort(1) + "/"));
      assertTrue(connects(proxy.blobPort(0)));

      proxy.outage(0, "refuse", 1_500);
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", proxy.blobPort(0)), 1_000);
        fail("client 0 connected during its outage");
      } catch (ConnectException expected) {
        // refused
      }
      assertTrue("client 1 is untouched", connects(proxy.blobPort(1)));
      Await.until("the outage to end", 10_000, () -> connects(proxy.blobPort(0)));
      assertTrue(proxy.stats().contains("\"ok\":true"));
    }
  }

  @Test
  public void commandsAreCheckedAndTheProcessEndsOnClose() throws Exception {
    FaithfulProxy proxy = FaithfulProxy.start(azurite, 1, 7, "realistic");
    try {
      long id = proxy.burst(FaithfulProxy.ALL, "orders", "p\"1", "server_busy", 1_000);
      assertTrue(id > 0);
      try {
        proxy.outage(3, "refuse", 10);
        fail("client 3 does not exist");
      } catch (IOException expected) {
        assertTrue(expected.getMessage(), expected.getMessage().contains("client 3"));
      }
      proxy.clear(FaithfulProxy.ALL);
    } finally {
      proxy.close();
    }
    assertFalse("the proxy exits when its stdin closes", proxy.isAlive());
  }
}
