package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.Test;

/**
 * Every structured result has the same field names, in the same order, in the library ({@code
 * src/jni/payloads.rs}) and in {@link Payloads}, whose layouts the Java decoders read by name.
 */
public class PayloadContractTest {

  @Test
  public void javaAndTheLibraryLayOutEveryPayloadAlike() {
    Native.ensureLoaded();
    List<String> java = new ArrayList<>();
    for (PayloadLayout l : Payloads.ALL) {
      java.add(l.describe());
    }
    assertEquals(Arrays.asList(Native.payloadLayouts()), java);
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
