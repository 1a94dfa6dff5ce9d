package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.Test;

/**
 * The load-time half of the JNI contract: the library binds its methods with {@code
 * RegisterNatives} in {@code JNI_OnLoad}, so a {@link Native} that declares one method differently
 * must make {@code System.load} itself fail, naming that method. {@link NativeContractTest} covers
 * the other direction, which Java checks after the load.
 *
 * <p>Each case compiles a stand-in {@code org.apache.samza.azure.jni.Native} from the real class's
 * native declarations (optionally with one parameter type changed) and loads the library from it in
 * a fresh JVM: the library finds {@code Native} through the loading class's loader, and a JVM keeps
 * a library to the first loader that loads it.
 */
public class NativeRegistrationTest {
  private static final String DRIFTED = "leaseAcquire";

  /** The library loads against a stand-in that declares exactly what {@link Native} declares. */
  @Test
  public void aFaithfulDeclarationLoads() throws Exception {
    String out = loadAgainst(stubSource(false));
    assertTrue(out, out.startsWith("LOADED"));
  }

  @Test
  public void aMethodDeclaredWithAnotherTypeFailsTheLoadByName() throws Exception {
    String out = loadAgainst(stubSource(true));
    assertTrue(out, out.startsWith("REFUSED java.lang.NoSuchMethodError"));
    // The Rust side's descriptor (int seconds), which the stand-in declares with a long.
    String expected = DRIFTED + "(JLjava/lang/String;Ljava/lang/String;ILjava/lang/String;)";
    assertTrue(out, out.contains("does not declare so: " + expected));
    // Only that method is refused: every other one still bound.
    assertEquals(out, 1, out.split("does not declare so: ")[1].split("; ").length);
  }

  /**
   * Source of a {@code Native} with the real one's natives and a {@code main} that loads the
   * library; with {@code drift}, {@link #DRIFTED}'s {@code int} parameter becomes a {@code long}.
   */
  private static String stubSource(boolean drift) {
    StringBuilder src = new StringBuilder("package org.apache.samza.azure.jni;\n");
    src.append("public final class Native {\n");
    src.append("  public static void main(String[] args) {\n");
    src.append("    try { System.load(args[0]); System.out.println(\"LOADED\"); }\n");
    src.append("    catch (Throwable t) {\n");
    src.append("      System.out.println(\"REFUSED \" + t.getClass().getName() + \": \"");
    src.append(" + t.getMessage()); }\n");
    src.append("  }\n");
    Method[] methods = Native.class.getDeclaredMethods();
    Arrays.sort(methods, Comparator.comparing(Method::getName));
    boolean drifted = false;
    for (Method m : methods) {
      if (!Modifier.isNative(m.getModifiers())) {
        continue;
      }
      List<String> params = new ArrayList<>();
      Class<?>[] types = m.getParameterTypes();
      for (int i = 0; i < types.length; i++) {
        String type = types[i].getCanonicalName();
        if (drift && m.getName().equals(DRIFTED) && types[i] == int.class) {
          type = "long";
          drifted = true;
        }
        params.add(type + " a" + i);
      }
      src.append("  static native ")
          .append(m.getReturnType().getCanonicalName())
          .append(' ')
          .append(m.getName())
          .append('(')
          .append(String.join(", ", params))
          .append(");\n");
    }
    assertEquals("Native." + DRIFTED + " has an int parameter to change", drift, drifted);
    return src.append("}\n").toString();
  }

  /** Compiles {@code source} and runs its {@code main} in a fresh JVM; returns what it printed. */
  private static String loadAgainst(String source) throws Exception {
    Native.ensureLoaded();
    String library = NativeLibrary.loadedFrom();
    assertNotNull("the library was loaded from a file", library);
    Path dir = Files.createTempDirectory("native-stub");
    try {
      Path file = dir.resolve("org/apache/samza/azure/jni/Native.java");
      Files.createDirectories(file.getParent());
      Files.write(file, source.getBytes(StandardCharsets.UTF_8));
      JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
      assertNotNull("the tests run on a JDK", javac);
      ByteArrayOutputStream errors = new ByteArrayOutputStream();
      int compiled =
          javac.run(null, null, errors, "-d", dir.toString(), "-nowarn", file.toString());
      assertEquals(errors.toString("UTF-8"), 0, compiled);

      String java = System.getProperty("java.home") + File.separator + "bin" + File.separator;
      Process p =
          new ProcessBuilder(
                  java + "java",
                  "-cp",
                  dir.toString(),
                  "org.apache.samza.azure.jni.Native",
                  library)
              .redirectErrorStream(true)
              .start();
      boolean ended = p.waitFor(60, TimeUnit.SECONDS);
      if (!ended) {
        p.destroyForcibly();
      }
      String out = read(p.getInputStream());
      assertTrue("the stub JVM ended within 60 s: " + out, ended);
      assertEquals(out, 0, p.exitValue());
      assertFalse(out, out.isEmpty());
      return out.trim();
    } finally {
      deleteTree(dir);
    }
  }

  private static String read(InputStream in) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buf = new byte[8192];
    for (int n; (n = in.read(buf)) > 0; ) {
      out.write(buf, 0, n);
    }
    return out.toString("UTF-8");
  }

  private static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toArray(Path[]::new)) {
        Files.deleteIfExists(p);
      }
    }
  }
}
