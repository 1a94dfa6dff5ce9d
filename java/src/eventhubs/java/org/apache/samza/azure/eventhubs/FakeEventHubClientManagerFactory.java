package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.eventhubs.EventHubClient;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.apache.samza.SamzaException;
import org.apache.samza.system.eventhub.EventHubClientManager;
import org.apache.samza.system.eventhub.EventHubClientManagerFactory;
import org.apache.samza.system.eventhub.EventHubConfig;

/**
 * Samza's seam for the Event Hubs client: hands Samza's consumer, producer and admin a {@link
 * FakeEventHubClient} instead of a network client. It reads the same required keys as Samza's own
 * factory (namespace, entity path, SAS key name and token), so a config that passes here names
 * everything a real namespace needs; the event hubs live under {@code systems.<system>.fake.dir}.
 */
public class FakeEventHubClientManagerFactory extends EventHubClientManagerFactory {
  /** Directory holding the fake namespaces, per system. */
  public static final String ROOT = "systems.%s.fake.dir";

  @Override
  public EventHubClientManager getEventHubClientManager(
      String systemName, String streamName, EventHubConfig config) {
    String namespace = config.getStreamNamespace(systemName, streamName);
    String entityPath = config.getStreamEntityPath(systemName, streamName);
    config.getStreamSasKeyName(systemName, streamName);
    config.getStreamSasToken(systemName, streamName);
    String root = config.get(String.format(ROOT, systemName));
    if (root == null) {
      throw new SamzaException(String.format(ROOT, systemName) + " must name the fake's directory");
    }
    return new Manager(Paths.get(root), namespace, entityPath);
  }

  private static final class Manager implements EventHubClientManager {
    private final Path root;
    private final String namespace;
    private final String entityPath;
    private volatile FakeEventHubClient client;

    Manager(Path root, String namespace, String entityPath) {
      this.root = root;
      this.namespace = namespace;
      this.entityPath = entityPath;
    }

    @Override
    public void init() {
      client = new FakeEventHubClient(root, FakeHub.open(root, namespace, entityPath));
    }

    @Override
    public EventHubClient getEventHubClient() {
      return client;
    }

    @Override
    public void close(long timeoutMs) {
      FakeEventHubClient c = client;
      if (c != null) {
        c.closeSync();
      }
    }
  }
}
