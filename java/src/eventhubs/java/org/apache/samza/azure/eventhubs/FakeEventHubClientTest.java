package org.apache.samza.azure.eventhubs;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import com.microsoft.azure.eventhubs.EventData;
import com.microsoft.azure.eventhubs.EventHubRuntimeInformation;
import com.microsoft.azure.eventhubs.EventPosition;
import com.microsoft.azure.eventhubs.PartitionReceiveHandler;
import com.microsoft.azure.eventhubs.PartitionReceiver;
import com.microsoft.azure.eventhubs.PartitionRuntimeInformation;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutionException;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.system.eventhub.consumer.EventHubSystemConsumer;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * The fake client against the calls Samza's Event Hubs consumer, producer and admin make, with the
 * start positions they use: "-1" exclusive (oldest), a checkpointed offset exclusive, the same
 * inclusive (Samza's receiver renewal), and "now" by enqueued time ("-2", upcoming).
 */
public class FakeEventHubClientTest {
  private Path root;
  private FakeHub hub;
  private FakeEventHubClient client;

  @Before
  public void setUp() throws Exception {
    root = Files.createTempDirectory("fake-eventhubs");
    hub = FakeHub.create(root, "ns", "hub", 2);
    client = new FakeEventHubClient(root, hub);
    for (int i = 0; i < 5; i++) {
      hub.append("0", bytes("e" + i), null, null);
    }
  }

  @After
  public void tearDown() {
    client.closeSync();
    FakeHub.deleteTree(root);
  }

  @Test
  public void runtimeInformationIsWhatSamzasAdminReads() throws Exception {
    EventHubRuntimeInformation info = client.getRuntimeInformation().get();
    assertEquals(2, info.getPartitionCount());
    assertEquals("[0, 1]", Arrays.toString(info.getPartitionIds()));
    PartitionRuntimeInformation p0 = client.getPartitionRuntimeInformation("0").get();
    List<FakeHub.Event> events = hub.readAll("0");
    assertEquals(4, p0.getLastEnqueuedSequenceNumber());
    assertEquals(events.get(4).offset(), p0.getLastEnqueuedOffset());
    assertEquals(0, p0.getBeginSequenceNumber());
    // An empty partition, as Event Hubs reports one.
    PartitionRuntimeInformation p1 = client.getPartitionRuntimeInformation("1").get();
    assertEquals(-1, p1.getLastEnqueuedSequenceNumber());
    assertEquals("-1", p1.getLastEnqueuedOffset());
  }

  @Test
  public void receiversStartWhereTheEventPositionSays() throws Exception {
    List<FakeHub.Event> events = hub.readAll("0");
    String third = events.get(2).offset();
    assertEquals(
        "e0 e1 e2 e3 e4",
        bodies(EventPosition.fromOffset(EventHubSystemConsumer.START_OF_STREAM, false)));
    assertEquals("e0 e1 e2 e3 e4", bodies(EventPosition.fromStartOfStream()));
    assertEquals("e3 e4", bodies(EventPosition.fromOffset(third, false)));
    assertEquals("e2 e3 e4", bodies(EventPosition.fromOffset(third, true)));
    assertEquals("e4", bodies(EventPosition.fromSequenceNumber(3L, false)));
    assertEquals("e3 e4", bodies(EventPosition.fromSequenceNumber(3L, true)));
    assertEquals("", bodies(EventPosition.fromEndOfStream()));
    assertEquals("", bodies(EventPosition.fromEnqueuedTime(Instant.now().plusSeconds(1))));
    assertEquals(
        "e0 e1 e2 e3 e4", bodies(EventPosition.fromEnqueuedTime(Instant.now().minusSeconds(60))));
  }

  @Test
  public void receivedEventsCarryTheSystemPropertiesSamzaReads() throws Exception {
    PartitionReceiver r =
        client.createReceiverSync("$Default", "0", EventPosition.fromStartOfStream());
    r.setReceiveTimeout(Duration.ofMillis(200));
    List<FakeHub.Event> events = hub.readAll("0");
    int i = 0;
    for (EventData e : r.receiveSync(10)) {
      assertEquals(events.get(i).offset(), e.getSystemProperties().getOffset());
      assertEquals(i, e.getSystemProperties().getSequenceNumber());
      assertEquals(
          events.get(i).enqueuedMillis, e.getSystemProperties().getEnqueuedTime().toEpochMilli());
      assertNull(e.getSystemProperties().getPartitionKey());
      i++;
    }
    assertEquals(5, i);
    // Nothing new within the receive timeout: null, like the real client.
    assertNull(r.receiveSync(10));
    r.closeSync();
  }

  @Test
  public void aHandlerGetsEventsAppendedLaterInBatchesOfItsSize() throws Exception {
    PartitionReceiver r =
        client.createReceiverSync(
            "$Default", "1", EventPosition.fromEnqueuedTime(Instant.now().minusMillis(1)));
    List<Integer> batches = Collections.synchronizedList(new ArrayList<>());
    List<String> got = Collections.synchronizedList(new ArrayList<>());
    r.setReceiveHandler(
        new PartitionReceiveHandler() {
          @Override
          public int getMaxEventCount() {
            return 3;
          }

          @Override
          public void onReceive(Iterable<EventData> events) {
            int n = 0;
            for (EventData e : events) {
              got.add(new String(e.getBytes(), StandardCharsets.UTF_8));
              n++;
            }
            batches.add(n);
          }

          @Override
          public void onError(Throwable error) {
            throw new AssertionError(error);
          }
        });
    for (int i = 0; i < 7; i++) {
      hub.append("1", bytes("later" + i), null, null);
    }
    Await.until("7 events handled", 10_000, () -> got.size() == 7);
    assertTrue(batches.toString(), batches.stream().allMatch(n -> n <= 3));
    assertEquals("later0", got.get(0));
    r.closeSync();
  }

  @Test
  public void sendsGoToThePartitionOfTheirKeyWithTheirProperties() throws Exception {
    EventData e = EventData.create(bytes("v"));
    e.getProperties().put("key", "k1");
    client.send(e, "k1").get();
    client.send(EventData.create(bytes("w")), "k1").get();
    String p = client.partitionFor("k1");
    List<FakeHub.Event> events = hub.readAll(p);
    FakeHub.Event sent = events.get(events.size() - 2);
    assertEquals("v", sent.bodyText());
    assertEquals("k1", sent.partitionKey);
    assertEquals("k1", sent.properties.get("key"));
    assertEquals("w", events.get(events.size() - 1).bodyText());
    client.createPartitionSender("1").get().send(EventData.create(bytes("x"))).get();
    List<FakeHub.Event> p1 = hub.readAll("1");
    assertEquals("x", p1.get(p1.size() - 1).bodyText());
  }

  @Test(expected = ExecutionException.class)
  public void anUnknownPartitionIsAnError() throws Exception {
    client.getPartitionRuntimeInformation("7").get();
  }

  private String bodies(EventPosition position) throws Exception {
    PartitionReceiver r = client.createReceiverSync("$Default", "0", position);
    r.setReceiveTimeout(Duration.ofMillis(100));
    StringBuilder out = new StringBuilder();
    Iterable<EventData> events = r.receiveSync(100);
    if (events != null) {
      for (EventData e : events) {
        out.append(out.length() == 0 ? "" : " ")
            .append(new String(e.getBytes(), StandardCharsets.UTF_8));
      }
    }
    r.closeSync();
    return out.toString();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
