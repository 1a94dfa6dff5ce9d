package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.Test;

/**
 * Every structured result has the same field names, in the same order, in the library ({@code
 * src/jni/payloads.rs}) and in {@link Payloads}, whose layouts the Java decoders read by name.
 */
public class PayloadContractTest {

  @Test
  public void javaAndTheLibraryLayOutEveryPayloadAlike() {
    Native.ensureLoaded();
    Map<String, String> rust = new LinkedHashMap<>();
    for (String l : Native.payloadLayouts()) {
      rust.put(l.substring(0, l.indexOf(':')), l);
    }
    Map<String, String> java = new LinkedHashMap<>();
    for (PayloadLayout l : Payloads.ALL) {
      java.put(l.name, l.describe());
    }
    assertEquals("payloads", new ArrayList<>(rust.keySet()), new ArrayList<>(java.keySet()));
    for (Map.Entry<String, String> e : rust.entrySet()) {
      // One payload per message, so a failure names the payload and both field lists.
      assertEquals(
          e.getKey() + ": library (expected) vs Payloads.java", e.getValue(), java.get(e.getKey()));
    }
  }

  @Test
  public void aPayloadOfTheWrongShapeIsRefused() {
    Payloads.COORDINATOR_FENCE.check(2);
    Payloads.EVENT_COMPUTE.check(3);
    Payloads.EVENT_COMPUTE.check(5);
    try {
      Payloads.COORDINATOR_FENCE.check(3);
      fail("three fields passed as a fence reading");
    } catch (IllegalStateException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("coordinatorFence: epoch,nanos_left"));
    }
    try {
      Payloads.event("elected");
      fail("an unknown event kind was decoded");
    } catch (IllegalStateException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("elected"));
    }
  }
}
