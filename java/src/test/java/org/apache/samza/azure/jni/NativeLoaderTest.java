package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.Assume;
import org.junit.Test;

/**
 * Fresh JVMs with only the built jar, Samza and slf4j on the classpath: the library must load from
 * the jar alone, concurrently, and shut down cleanly.
 */
public class NativeLoaderTest {

  static final class Run {
    final int exit;
    final String out;

    Run(int exit, String out) {
      this.exit = exit;
      this.out = out;
    }
  }

  private static String minimalClasspath() {
    String jar = System.getProperty("samza.azure.test.jar");
    assertTrue("built jar at " + jar, jar != null && new File(jar).isFile());
    List<String> cp = new ArrayList<>();
    cp.add(jar);
    for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
      String name = new File(entry).getName();
      if (name.startsWith("samza-api-")
          || name.startsWith("samza-core_")
          || name.startsWith("slf4j-api-")) {
        cp.add(entry);
      }
    }
    assertEquals("jar + samza-api + samza-core + slf4j-api: " + cp, 4, cp.size());
    return String.join(File.pathSeparator, cp);
  }

  private static Process launch(Path nativeDir, String... args) throws IOException {
    return launch(
        Arrays.asList(
            "-D" + NativeLibrary.PROP_DIR + "=" + nativeDir,
            // Make sure nothing but the jar can provide the library.
            "-Djava.library.path=" + nativeDir.resolve("empty-library-path")),
        args);
  }

  private static Process launch(List<String> props, String... args) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
    cmd.add("-Xcheck:jni");
    cmd.addAll(props);
    cmd.add("-cp");
    cmd.add(minimalClasspath());
    cmd.add(NativeSelfCheck.class.getName());
    for (String a : args) {
      cmd.add(a);
    }
    return new ProcessBuilder(cmd).redirectErrorStream(true).start();
  }

  private static Run finish(Process p) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (InputStream in = p.getInputStream()) {
      byte[] buf = new byte[8192];
      int n;
      while ((n = in.read(buf)) > 0) {
        out.write(buf, 0, n);
      }
    }
    boolean exited = p.waitFor(60, TimeUnit.SECONDS);
    if (!exited) {
      p.destroyForcibly();
    }
    assertTrue("JVM exited on its own (no thread kept it alive)", exited);
    return new Run(p.exitValue(), out.toString(StandardCharsets.UTF_8.name()));
  }

  @Test
  public void loadsFromTheJarAloneInSeveralJvmsAtOnce() throws Exception {
    Path dir = Files.createTempDirectory("native-extract-");
    List<Process> jvms = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      jvms.add(launch(dir));
    }
    for (Process p : jvms) {
      Run r = finish(p);
      assertEquals(r.out, 0, r.exit);
      assertTrue(r.out, r.out.contains("loadedFrom=" + dir));
      assertTrue(r.out, r.out.contains("roundTrip=ok"));
      assertTrue(r.out, r.out.contains("platform=linux-"));
    }
  }

  @Test
  public void runtimeShutsDownCleanlyAndLaterCallsFail() throws Exception {
    Run r = finish(launch(Files.createTempDirectory("native-extract-"), "--shutdown"));
    assertEquals(r.out, 0, r.exit);
    assertTrue(r.out, r.out.contains("runtimeRunning=false"));
    assertTrue(r.out, r.out.contains("afterShutdown=AzureCoordinationException"));
    assertTrue(r.out, r.out.contains("shut down"));
  }

  @Test
  public void unusableDirectoryGivesAnErrorNamingPathAndPlatform() throws Exception {
    Path file = Files.createTempFile("not-a-dir-", ".txt");
    Run r = finish(launch(file));
    assertTrue(r.out, r.exit != 0);
    assertTrue(r.out, r.out.contains("NativeLibraryException"));
    assertTrue(r.out, r.out.contains(file.toString()));
    assertTrue(r.out, r.out.contains("os.arch=") && r.out.contains("libc=glibc"));
  }

  /** A directory made someone else's (uid 65534, "nobody"), writable by all; needs root. */
  private static Path foreignDirectory(Path dir) throws Exception {
    Files.createDirectories(dir);
    Process p =
        new ProcessBuilder(
                "sh", "-c", "chmod 0777 \"$0\" && chown 65534:65534 \"$0\"", dir.toString())
            .redirectErrorStream(true)
            .start();
    Assume.assumeTrue("chown needs root", p.waitFor() == 0);
    return dir;
  }

  /** Whoever owns a configured directory could swap the library between check and load. */
  @Test
  public void extractionDirectoryOwnedBySomeoneElseIsRefused() throws Exception {
    Path dir = foreignDirectory(Files.createTempDirectory("native-parent-").resolve("shared"));
    Run r = finish(launch(dir));
    assertTrue(r.out, r.exit != 0);
    assertTrue(r.out, r.out.contains("NativeLibraryException"));
    assertTrue(r.out, r.out.contains(dir.toString()) && r.out.contains("owned by"));
    try (java.util.stream.Stream<Path> files = Files.list(dir)) {
      assertEquals("nothing written into it", 0, files.count());
    }
  }

  /**
   * On a shared temp dir, a directory another user created first under the default name is not
   * used: the library is extracted to a directory of this user's own.
   */
  @Test
  public void defaultDirectoryTakenBySomeoneElseIsAvoided() throws Exception {
    Path tmp = Files.createTempDirectory("native-tmp-");
    String user = System.getProperty("user.name");
    foreignDirectory(tmp.resolve("samza-azure-native"));
    foreignDirectory(tmp.resolve("samza-azure-native-" + user));
    Path home = Files.createTempDirectory("native-home-");
    Path empty = tmp.resolve("empty-library-path");
    Run r =
        finish(
            launch(
                Arrays.asList(
                    "-Djava.io.tmpdir=" + tmp,
                    "-Duser.home=" + home,
                    "-Djava.library.path=" + empty)));
    assertEquals(r.out, 0, r.exit);
    assertTrue(r.out, r.out.contains("roundTrip=ok"));
    String from =
        Arrays.stream(r.out.split("\n"))
            .filter(l -> l.startsWith("loadedFrom="))
            .findFirst()
            .orElse("")
            .substring("loadedFrom=".length());
    assertTrue(r.out, !from.isEmpty());
    assertTrue(
        "loaded from a directory another user owns: " + from,
        !from.startsWith(tmp.resolve("samza-azure-native") + File.separator)
            && !from.startsWith(tmp.resolve("samza-azure-native-" + user) + File.separator));
  }
}
