package org.apache.samza.azure.jni;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * How a job's config crosses the boundary: as two parallel arrays, keys and values, holding only
 * the keys the native side reads.
 */
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

  /** A native constructor that takes a config as the two arrays and returns a handle. */
  @FunctionalInterface
  public interface Opener {
    long open(String[] keys, String[] values);
  }

  /**
   * Loads the library if needed, then opens a native object from {@code config}; bad config fails
   * there with an exception naming the key.
   */
  public static long open(Map<String, String> config, Opener opener) {
    Native.ensureLoaded();
    ConfigArrays c = new ConfigArrays(config);
    return opener.open(c.keys, c.values);
  }

  /** A native constructor that also takes the id of the processor or group it serves. */
  @FunctionalInterface
  public interface OpenerFor {
    long open(String[] keys, String[] values, String id);
  }

  /** {@link #open(Map, Opener)} for a native object that serves {@code id}. */
  public static long open(Map<String, String> config, String id, OpenerFor opener) {
    return open(config, (keys, values) -> opener.open(keys, values, id));
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
