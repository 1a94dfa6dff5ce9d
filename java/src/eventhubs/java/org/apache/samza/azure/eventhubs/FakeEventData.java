package org.apache.samza.azure.eventhubs;

import com.microsoft.azure.eventhubs.EventData;
import java.util.HashMap;
import java.util.Map;

/**
 * A received event: its body as a binary data section (as Event Hubs delivers what producers send),
 * its application properties, and the system properties a real receiver fills in.
 */
final class FakeEventData implements EventData {
  private static final long serialVersionUID = 1L;

  private final byte[] body;
  private final HashMap<String, Object> properties;
  private final SystemProperties systemProperties;

  FakeEventData(byte[] body, HashMap<String, Object> properties, SystemProperties system) {
    this.body = body;
    this.properties = properties;
    this.systemProperties = system;
  }

  /** Only bodies sent as an AMQP value have an object; these are binary data, as from Samza. */
  @Override
  public Object getObject() {
    return null;
  }

  @Override
  public byte[] getBytes() {
    return body;
  }

  @Override
  public Map<String, Object> getProperties() {
    return properties;
  }

  @Override
  public SystemProperties getSystemProperties() {
    return systemProperties;
  }
}
