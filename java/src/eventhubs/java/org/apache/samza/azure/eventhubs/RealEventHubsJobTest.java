package org.apache.samza.azure.eventhubs;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import com.microsoft.azure.eventhubs.ConnectionStringBuilder;
import com.microsoft.azure.eventhubs.EventData;
import com.microsoft.azure.eventhubs.EventHubClient;
import com.microsoft.azure.eventhubs.EventPosition;
import com.microsoft.azure.eventhubs.PartitionReceiveHandler;
import com.microsoft.azure.eventhubs.PartitionReceiver;
import com.microsoft.azure.eventhubs.PartitionSender;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.Partition;
import org.apache.samza.azure.AzureApplicationRunner;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.AzureJobCoordinatorFactory;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.checkpoint.Checkpoint;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.system.eventhub.EventHubSystemFactory;
import org.junit.Assume;
import org.junit.Test;

/**
 * The same job as {@link FakeEventHubsJobTest} against a real Event Hubs namespace and storage
 * account, with Samza's own {@link EventHubSystemFactory} (no fake anywhere). Runs only when the
 * environment names them (otherwise skipped):
 *
 * <ul>
 *   <li>{@code SAMZA_AZURE_EVENTHUBS_NAMESPACE}: the namespace ({@code
 *       <name>.servicebus.windows.net} is derived by Samza)
 *   <li>{@code SAMZA_AZURE_EVENTHUBS_SAS_KEYNAME}, {@code SAMZA_AZURE_EVENTHUBS_SAS_TOKEN}: a
 *       policy with Send and Listen on both event hubs
 *   <li>{@code SAMZA_AZURE_EVENTHUBS_INPUT}, {@code SAMZA_AZURE_EVENTHUBS_OUTPUT}: two event hubs
 *       used only by this test (the job reads the input with the consumer group {@code $Default})
 *   <li>{@code SAMZA_AZURE_STORAGE_CONNECT}: a storage account connection string
 * </ul>
 *
 * <p>Two processors start; warm-up events go to every input partition until each has reached a
 * task; then 100 events, all of which must reach the output; the processor holding partition 0 is
 * killed with SIGKILL, 100 more events are sent at once, and all of those must reach the output
 * too, through the survivor resuming from the committed checkpoints.
 */
public class RealEventHubsJobTest {
  private static final String[] VARIABLES = {
    "SAMZA_AZURE_EVENTHUBS_NAMESPACE",
    "SAMZA_AZURE_EVENTHUBS_SAS_KEYNAME",
    "SAMZA_AZURE_EVENTHUBS_SAS_TOKEN",
    "SAMZA_AZURE_EVENTHUBS_INPUT",
    "SAMZA_AZURE_EVENTHUBS_OUTPUT",
    "SAMZA_AZURE_STORAGE_CONNECT",
  };
  private static final long BOUND = 180_000;

  @Test
  public void relaysThroughARealNamespaceAcrossKill9() throws Exception {
    Map<String, String> env = new HashMap<>();
    List<String> missing = new ArrayList<>();
    for (String v : VARIABLES) {
      String value = System.getenv(v);
      if (value == null || value.isEmpty()) {
        missing.add(v);
      } else {
        env.put(v, value);
      }
    }
    Assume.assumeTrue("set " + missing + " to run against a real namespace", missing.isEmpty());

    String run = Long.toHexString(System.currentTimeMillis());
    Instant began = Instant.now();
    Map<String, String> config = config(env);
    Path dir = Files.createTempDirectory("samza-eventhubs-real");
    ExecutorService executor = Executors.newCachedThreadPool();
    EventHubClient input =
        EventHubClient.createSync(connection(env, "SAMZA_AZURE_EVENTHUBS_INPUT"), executor);
    EventHubClient output =
        EventHubClient.createSync(connection(env, "SAMZA_AZURE_EVENTHUBS_OUTPUT"), executor);
    Set<String> seen = ConcurrentHashMap.newKeySet();
    List<String> duplicates = new ArrayList<>();
    AtomicReference<Throwable> readError = new AtomicReference<>();
    List<PartitionReceiver> receivers = new ArrayList<>();
    List<String> live = new ArrayList<>(Arrays.asList("p1", "p2"));
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
    try (RelayProcessors c =
        new RelayProcessors(
            dir, config, jvmArgs, System.getProperty("samza.azure.test.classpath"))) {
      // Everything this run sends that the job relays, as read from the output event hub.
      for (String p : output.getRuntimeInformation().get().getPartitionIds()) {
        PartitionReceiver r =
            output.createReceiverSync(
                EventHubClient.DEFAULT_CONSUMER_GROUP_NAME,
                p,
                EventPosition.fromEnqueuedTime(began.minus(Duration.ofMinutes(1))));
        r.setReceiveHandler(
            new PartitionReceiveHandler() {
              @Override
              public int getMaxEventCount() {
                return 100;
              }

              @Override
              public void onReceive(Iterable<EventData> events) {
                if (events == null) {
                  return;
                }
                for (EventData e : events) {
                  String body = new String(e.getBytes(), StandardCharsets.UTF_8);
                  if (body.contains(run) && !seen.add(body)) {
                    synchronized (duplicates) {
                      duplicates.add(body);
                    }
                  }
                }
              }

              @Override
              public void onError(Throwable error) {
                readError.compareAndSet(null, error);
              }
            });
        receivers.add(r);
      }

      for (String id : live) {
        c.start(id);
      }
      String[] inputPartitions = input.getRuntimeInformation().get().getPartitionIds();
      List<PartitionSender> senders = new ArrayList<>();
      for (String p : inputPartitions) {
        senders.add(input.createPartitionSenderSync(p));
      }
      // Warm-up until every input partition's receiver is running (the job starts at "upcoming"):
      // a round of one event per partition each second.
      Set<Integer> warm = new HashSet<>();
      long[] lastRound = {0};
      int[] round = {0};
      Await.until(
          "warm-up events to reach a task from every input partition",
          BOUND,
          () -> {
            try {
              if (System.nanoTime() - lastRound[0] > 1_000_000_000L) {
                for (int i = 0; i < senders.size(); i++) {
                  senders
                      .get(i)
                      .sendSync(EventData.create(bytes("warm-" + run + "-" + i + "-" + round[0])));
                }
                round[0]++;
                lastRound[0] = System.nanoTime();
              }
              for (List<RelayProcessors.Record> rs : c.records().values()) {
                for (RelayProcessors.Record r : rs) {
                  if (r.kind.equals("msg") && r.id.startsWith("warm-" + run)) {
                    warm.add(r.partition);
                  }
                }
              }
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
            for (String id : live) {
              if (!c.isRunning(id)) {
                throw new AssertionError(id + " exited during warm-up");
              }
            }
            return warm.size() == inputPartitions.length;
          });

      Set<String> batchA = send(input, "a-" + run, 100);
      awaitAll(c, live, seen, batchA, readError);
      StoredCheckpoints stored =
          new StoredCheckpoints(config, env.get("SAMZA_AZURE_STORAGE_CONNECT"));
      Await.until(
          "committed input offsets for every partition",
          60_000,
          () -> {
            try {
              for (int p = 0; p < inputPartitions.length; p++) {
                Checkpoint cp = stored.read("Partition " + p).get((short) 1);
                if (cp == null || cp.getOffsets().get(ssp(p)) == null) {
                  return false;
                }
              }
              return true;
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
          });

      String victim = c.owners().get(0).get(0);
      c.kill(victim);
      live.remove(victim);
      Set<String> batchB = send(input, "b-" + run, 100);
      awaitAll(c, live, seen, batchB, readError);
      c.stop(live);

      TreeSet<String> offsets = new TreeSet<>();
      for (List<RelayProcessors.Record> rs : c.records().values()) {
        for (RelayProcessors.Record r : rs) {
          if (r.kind.equals("msg")) {
            offsets.add(r.offset);
          }
        }
      }
      for (int p = 0; p < inputPartitions.length; p++) {
        String committed = stored.read("Partition " + p).get((short) 1).getOffsets().get(ssp(p));
        // Event Hubs' own offset strings, stored and handed back as they are.
        assertTrue("partition " + p + " committed " + committed, offsets.contains(committed));
      }
      assertEquals(new HashSet<String>(), missing(seen, batchA));
      assertEquals(new HashSet<String>(), missing(seen, batchB));
      System.out.printf(
          "real namespace: %d + %d events relayed across kill -9 of %s; %d duplicates%n",
          batchA.size(), batchB.size(), victim, duplicates.size());
    } finally {
      for (PartitionReceiver r : receivers) {
        r.closeSync();
      }
      input.closeSync();
      output.closeSync();
      executor.shutdownNow();
    }
  }

  private static Map<String, String> config(Map<String, String> env) {
    Map<String, String> c = new HashMap<>();
    c.put("job.name", System.getenv().getOrDefault("SAMZA_AZURE_EVENTHUBS_JOB", "ehrelaytest"));
    c.put("app.runner.class", AzureApplicationRunner.class.getName());
    c.put("job.coordinator.factory", AzureJobCoordinatorFactory.class.getName());
    c.put("task.checkpoint.factory", AzureCheckpointManagerFactory.class.getName());
    c.put("sensitive.azure.storage.connect", env.get("SAMZA_AZURE_STORAGE_CONNECT"));
    c.put("task.commit.ms", "1000");
    c.put("task.shutdown.ms", "10000");
    c.put("systems.eventhubs.samza.factory", EventHubSystemFactory.class.getName());
    c.put("systems.eventhubs.stream.list", "in,out");
    c.put("systems.eventhubs.default.stream.samza.offset.default", "upcoming");
    String[][] streams = {
      {"in", "SAMZA_AZURE_EVENTHUBS_INPUT"}, {"out", "SAMZA_AZURE_EVENTHUBS_OUTPUT"}
    };
    for (String[] s : streams) {
      c.put("streams." + s[0] + ".samza.system", "eventhubs");
      c.put("streams." + s[0] + ".eventhubs.namespace", env.get("SAMZA_AZURE_EVENTHUBS_NAMESPACE"));
      c.put("streams." + s[0] + ".eventhubs.entitypath", env.get(s[1]));
      c.put(
          "sensitive.streams." + s[0] + ".eventhubs.sas.keyname",
          env.get("SAMZA_AZURE_EVENTHUBS_SAS_KEYNAME"));
      c.put(
          "sensitive.streams." + s[0] + ".eventhubs.sas.token",
          env.get("SAMZA_AZURE_EVENTHUBS_SAS_TOKEN"));
    }
    return c;
  }

  private static String connection(Map<String, String> env, String entityVariable) {
    return new ConnectionStringBuilder()
        .setNamespaceName(env.get("SAMZA_AZURE_EVENTHUBS_NAMESPACE"))
        .setEventHubName(env.get(entityVariable))
        .setSasKeyName(env.get("SAMZA_AZURE_EVENTHUBS_SAS_KEYNAME"))
        .setSasKey(env.get("SAMZA_AZURE_EVENTHUBS_SAS_TOKEN"))
        .toString();
  }

  private static SystemStreamPartition ssp(int partition) {
    return new SystemStreamPartition(RelayApp.SYSTEM, RelayApp.INPUT, new Partition(partition));
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Sends n events keyed by their ids (Event Hubs picks the partition by hash). */
  private static Set<String> send(EventHubClient client, String prefix, int n) throws Exception {
    Set<String> ids = new TreeSet<>();
    for (int i = 0; i < n; i++) {
      String id = prefix + "-" + i;
      client.sendSync(EventData.create(bytes(id)), id);
      ids.add(id);
    }
    return ids;
  }

  private static Set<String> missing(Set<String> seen, Set<String> sent) {
    Set<String> m = new TreeSet<>(sent);
    m.removeAll(seen);
    return m;
  }

  private static void awaitAll(
      RelayProcessors c,
      List<String> live,
      Set<String> seen,
      Set<String> sent,
      AtomicReference<Throwable> readError)
      throws Exception {
    Await.until(
        sent.size() + " events in the output",
        BOUND,
        () -> {
          if (readError.get() != null) {
            throw new AssertionError("reading the output failed", readError.get());
          }
          for (String id : live) {
            if (!c.isRunning(id)) {
              throw new AssertionError(id + " exited");
            }
          }
          return seen.containsAll(sent);
        });
  }
}
