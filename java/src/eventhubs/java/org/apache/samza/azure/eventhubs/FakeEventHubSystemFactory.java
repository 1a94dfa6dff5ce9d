package org.apache.samza.azure.eventhubs;

import java.util.HashMap;
import java.util.Map;
import org.apache.samza.config.Config;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.system.SystemAdmin;
import org.apache.samza.system.SystemConsumer;
import org.apache.samza.system.SystemProducer;
import org.apache.samza.system.eventhub.EventHubConfig;
import org.apache.samza.system.eventhub.EventHubSystemFactory;
import org.apache.samza.system.eventhub.Interceptor;
import org.apache.samza.system.eventhub.admin.EventHubSystemAdmin;
import org.apache.samza.system.eventhub.admin.PassThroughInterceptor;
import org.apache.samza.system.eventhub.consumer.EventHubSystemConsumer;
import org.apache.samza.system.eventhub.producer.EventHubSystemProducer;

/**
 * Samza's {@link EventHubSystemFactory}, except that the consumer, producer and admin it builds
 * (Samza's own classes, through their public constructors) get their Event Hubs clients from {@link
 * FakeEventHubClientManagerFactory}. Samza's factory creates its client manager factory inside each
 * method, so this is the narrowest place to swap it.
 */
public class FakeEventHubSystemFactory extends EventHubSystemFactory {
  @Override
  public SystemConsumer getConsumer(String systemName, Config config, MetricsRegistry registry) {
    EventHubConfig eventHubConfig = new EventHubConfig(config);
    return new EventHubSystemConsumer(
        eventHubConfig,
        systemName,
        new FakeEventHubClientManagerFactory(),
        interceptors(eventHubConfig, systemName),
        registry);
  }

  @Override
  public SystemProducer getProducer(String systemName, Config config, MetricsRegistry registry) {
    EventHubConfig eventHubConfig = new EventHubConfig(config);
    return new EventHubSystemProducer(
        eventHubConfig,
        systemName,
        new FakeEventHubClientManagerFactory(),
        interceptors(eventHubConfig, systemName),
        registry);
  }

  @Override
  public SystemAdmin getAdmin(String systemName, Config config) {
    return new EventHubSystemAdmin(
        systemName, new EventHubConfig(config), new FakeEventHubClientManagerFactory());
  }

  /** What Samza's factory passes: a pass-through interceptor for every stream of the system. */
  private static Map<String, Interceptor> interceptors(EventHubConfig config, String systemName) {
    Map<String, Interceptor> interceptors = new HashMap<>();
    for (String stream : config.getStreams(systemName)) {
      interceptors.put(stream, new PassThroughInterceptor());
    }
    return interceptors;
  }
}
