package org.apache.samza.azure.jni;

import java.util.Map;

/** Config crosses the boundary as two parallel arrays, keys and values. */
public final class ConfigArrays {
  public final String[] keys;
  public final String[] values;

  public ConfigArrays(Map<String, String> config) {
    keys = config.keySet().toArray(new String[0]);
    values = new String[keys.length];
    for (int i = 0; i < keys.length; i++) {
      values[i] = config.get(keys[i]);
    }
  }
}
