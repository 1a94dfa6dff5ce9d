package org.apache.samza.azure.jni;

import java.util.Arrays;
import java.util.HashMap;
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

  /**
   * Only these keys and prefixes of a job's config cross to the native side; nothing else of it
   * leaves the JVM.
   */
  public static Map<String, String> select(
      Map<String, String> config, String[] keys, String[] prefixes) {
    Map<String, String> out = new HashMap<>();
    for (Map.Entry<String, String> e : config.entrySet()) {
      String k = e.getKey();
      boolean wanted = Arrays.asList(keys).contains(k);
      for (String prefix : prefixes) {
        wanted |= k.startsWith(prefix);
      }
      if (wanted && e.getValue() != null) {
        out.put(k, e.getValue());
      }
    }
    return out;
  }
}
