package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.samza.azure.testing.FaithfulProxy;

/**
 * Per-processor storage faults through a {@link FaithfulProxy}: gives each processor a client
 * endpoint of its own (the first processor started gets client 0, the next client 1, ...; a
 * restarted id keeps its client), injects faults by processor id or for {@link #ALL}, and records
 * when each processor's storage was cut, since from then on its container may be kept, paused.
 */
public final class StorageFaults implements AutoCloseable {
  /** Fault scope: every processor's endpoint. */
  public static final String ALL = "all";

  private static final String[] CONNECT_KEYS = {
    "sensitive.azure.storage.connect", "azure.storage.connect"
  };

  private final FaithfulProxy proxy;
  private final Map<String, Integer> clients = new ConcurrentHashMap<>();

  /** Per processor, when a storage outage of its own began. */
  private final Map<String, List<Long>> outages = new ConcurrentHashMap<>();

  /**
   * @param proxy in front of storage, or null when processors reach storage directly
   */
  public StorageFaults(FaithfulProxy proxy) {
    this.proxy = proxy;
  }

  /** The proxy in front of storage, or null when processors reach storage directly. */
  public FaithfulProxy proxy() {
    return proxy;
  }

  /**
   * A copy of {@code shared} whose connection string is processor {@code id}'s own client endpoint,
   * assigned now if it has none. Only with a proxy.
   */
  synchronized Properties configFor(String id, Properties shared) {
    Integer client = clients.get(id);
    if (client == null) {
      client = clients.size();
      if (client >= proxy.clients()) {
        throw new IllegalStateException(
            "processor "
                + id
                + " would be the "
                + (client + 1)
                + "th, but the proxy has "
                + proxy.clients()
                + " client endpoints");
      }
      clients.put(id, client);
    }
    Properties own = new Properties();
    own.putAll(shared);
    boolean set = false;
    for (String key : CONNECT_KEYS) {
      if (own.containsKey(key)) {
        own.put(key, proxy.connectionString(client));
        set = true;
      }
    }
    if (!set) {
      own.put(CONNECT_KEYS[0], proxy.connectionString(client));
    }
    return own;
  }

  /** The proxy client endpoint of processor {@code id}, or {@link FaithfulProxy#ALL} for ALL. */
  public int client(String id) {
    if (proxy == null) {
      throw new IllegalStateException("processors reach storage directly: no faults to inject");
    }
    if (ALL.equals(id)) {
      return FaithfulProxy.ALL;
    }
    Integer client = clients.get(id);
    if (client == null) {
      throw new IllegalArgumentException("processor " + id + " was never started");
    }
    return client;
  }

  /** Storage outage for processor {@code id} (or {@link #ALL}): mode "refuse" or "silent". */
  public void outage(String id, String mode, long millis) throws IOException {
    for (String each : ALL.equals(id) ? new ArrayList<>(clients.keySet()) : Arrays.asList(id)) {
      outageBegan(each);
    }
    proxy.outage(client(id), mode, millis);
  }

  /**
   * Processor {@code id}'s storage is cut now (by this proxy or another): from now on its holds
   * count by the messages it processes, since its container may be kept, paused.
   */
  public void outageBegan(String id) {
    outages.computeIfAbsent(id, k -> new ArrayList<>()).add(System.currentTimeMillis());
  }

  /** When processor {@code id}'s own outages began, in order. */
  public List<Long> outages(String id) {
    return outages.getOrDefault(id, Collections.<Long>emptyList());
  }

  /**
   * 503 ServerBusy ("server_busy") or 500 OperationTimedOut ("operation_timed_out") for {@code id}
   * (or {@link #ALL}) on one table partition, or the whole account when {@code table} is null.
   * Returns the rule id.
   */
  public long burst(String id, String table, String partitionKey, String error, long millis)
      throws IOException {
    return proxy.burst(client(id), table, partitionKey, error, millis);
  }

  /** {@code id}'s next {@code next} writes are applied, then answered with {@code outcome}. */
  public long ambiguous(String id, String outcome, int next, long hangMillis) throws IOException {
    return proxy.ambiguous(client(id), outcome, next, hangMillis);
  }

  /** {@code id}'s next {@code next} requests get their connection reset. */
  public long reset(String id, int next) throws IOException {
    return proxy.reset(client(id), next);
  }

  /** Latency for {@code id}'s requests (see {@link FaithfulProxy#latency}). */
  public void latency(String id, long minMillis, long maxMillis, double stallRate)
      throws IOException {
    proxy.latency(client(id), minMillis, maxMillis, stallRate);
  }

  /** Ends {@code id}'s outages and removes its fault rules. */
  public void clearFaults(String id) throws IOException {
    proxy.clear(client(id));
  }

  /** Storage requests processor {@code id}'s endpoint has received so far. */
  public long requests(String id) throws IOException {
    return proxy.requests()[client(id)];
  }

  /** Closes the proxy (closing it twice is harmless). */
  @Override
  public void close() {
    if (proxy != null) {
      proxy.close();
    }
  }
}
