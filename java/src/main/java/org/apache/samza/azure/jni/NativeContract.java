package org.apache.samza.azure.jni;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.samza.azure.errors.NativeLibraryException;

/**
 * Checks, once the library is loaded, that it implements exactly the {@code native} methods of
 * {@link Native}, by name and JNI descriptor. The library binds its methods itself when it loads
 * ({@code RegisterNatives}, see {@code src/jni/registry.rs}), which already refuses one that {@link
 * Native} declares differently or not at all; this check adds the other direction, a declaration
 * with no implementation, which the JVM would otherwise report only at that method's first call.
 */
final class NativeContract {
  private NativeContract() {}

  /** {@code name} + JNI descriptor of every native method of {@code c}, sorted. */
  static Set<String> declared(Class<?> c) {
    Set<String> out = new TreeSet<>();
    for (Method m : c.getDeclaredMethods()) {
      if (Modifier.isNative(m.getModifiers())) {
        out.add(m.getName() + descriptor(m));
      }
    }
    return out;
  }

  /** The JNI descriptor of a method: {@code (JLjava/lang/String;)[J}. */
  static String descriptor(Method m) {
    StringBuilder sb = new StringBuilder("(");
    for (Class<?> p : m.getParameterTypes()) {
      sb.append(descriptor(p));
    }
    return sb.append(')').append(descriptor(m.getReturnType())).toString();
  }

  private static String descriptor(Class<?> c) {
    if (c.isArray()) {
      // Class.getName() of an array is already its descriptor, with dots.
      return c.getName().replace('.', '/');
    }
    if (c.isPrimitive()) {
      List<Class<?>> order =
          Arrays.asList(
              boolean.class,
              byte.class,
              char.class,
              short.class,
              int.class,
              long.class,
              float.class,
              double.class,
              void.class);
      return String.valueOf("ZBCSIJFDV".charAt(order.indexOf(c)));
    }
    return "L" + c.getName().replace('.', '/') + ";";
  }

  /** What differs between {@code declared} and {@code implemented}; empty when they agree. */
  static List<String> mismatches(Set<String> declared, Set<String> implemented) {
    List<String> out = new ArrayList<>();
    for (String d : declared) {
      if (!implemented.contains(d)) {
        out.add("declared in Java, not implemented: " + d);
      }
    }
    for (String i : new TreeSet<>(implemented)) {
      if (!declared.contains(i)) {
        out.add("implemented, not declared in Java: " + i);
      }
    }
    return out;
  }

  /** Throws unless the loaded library implements exactly the natives of {@code c}. */
  static void check(Class<?> c, String[] implemented) {
    List<String> wrong = mismatches(declared(c), new TreeSet<>(Arrays.asList(implemented)));
    if (!wrong.isEmpty()) {
      throw new NativeLibraryException(
          "samza-azure native library loaded from "
              + NativeLibrary.loadedFrom()
              + " does not match "
              + c.getName()
              + " (a library of another version?): "
              + String.join("; ", wrong),
          null);
    }
  }
}
