package org.apache.samza.azure.testing;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Azurite for JUnit tests: started through {@code scripts/azurite} (the launcher the cargo tests
 * and the demo use) on free loopback ports with a temporary data folder, strict mode. {@link
 * #close()} stops it and waits for it to exit; a JVM shutdown hook does the same if a test forgets.
 */
public final class Azurite implements AutoCloseable {
  public static final String ACCOUNT = "devstoreaccount1";
  public static final String KEY =
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

  private final Process process;
  private final Path dir;
  private final Thread hook;
  public final int blobPort;
  public final int tablePort;

  private Azurite(Process process, Path dir, int blobPort, int tablePort) {
    this.process = process;
    this.dir = dir;
    this.blobPort = blobPort;
    this.tablePort = tablePort;
    this.hook = new Thread(this::stop, "azurite-stop");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  public static File projectRoot() {
    String root = System.getProperty("samza.azure.test.root");
    return new File(root != null ? root : ".").getAbsoluteFile();
  }

  public static Azurite start() throws IOException, InterruptedException {
    IOException last = null;
    // Free ports can be taken between picking and binding: retry a few times.
    for (int attempt = 0; attempt < 3; attempt++) {
      try {
        return tryStart();
      } catch (IOException e) {
        last = e;
      }
    }
    throw last;
  }

  private static Azurite tryStart() throws IOException, InterruptedException {
    Path dir = Files.createTempDirectory("azurite-junit-");
    int blob = freePort();
    int queue = freePort();
    int table = freePort();
    ProcessBuilder pb =
        new ProcessBuilder(
            new File(projectRoot(), "scripts/azurite").getPath(),
            "run",
            dir.toString(),
            Integer.toString(blob),
            Integer.toString(queue),
            Integer.toString(table));
    // Java 8 has no Redirect.DISCARD; Azurite runs --silent, so this file stays small.
    pb.redirectOutput(dir.resolve("azurite.out").toFile());
    pb.redirectError(ProcessBuilder.Redirect.INHERIT);
    Process p = pb.start();
    Azurite a = new Azurite(p, dir, blob, table);
    try {
      a.awaitListening(blob, 60_000);
      a.awaitListening(table, 10_000);
      return a;
    } catch (IOException e) {
      a.close();
      throw e;
    }
  }

  private void awaitListening(int port, long boundMillis) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(boundMillis);
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IOException("azurite exited early with " + process.exitValue());
      }
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return;
      } catch (IOException notYet) {
        Thread.sleep(50);
      }
    }
    throw new IOException("azurite did not listen on " + port + " within " + boundMillis + " ms");
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  public String connectionString() {
    return connectionString(blobPort, tablePort);
  }

  /** The connection string for Azurite's account on other ports (e.g. a proxy in front). */
  public static String connectionString(int blobPort, int tablePort) {
    return "DefaultEndpointsProtocol=http;AccountName="
        + ACCOUNT
        + ";AccountKey="
        + KEY
        + ";BlobEndpoint=http://127.0.0.1:"
        + blobPort
        + "/"
        + ACCOUNT
        + ";TableEndpoint=http://127.0.0.1:"
        + tablePort
        + "/"
        + ACCOUNT;
  }

  /** Samza-style config with {@code azure.storage.connect} pointing here. */
  public Map<String, String> config() {
    Map<String, String> c = new HashMap<>();
    c.put("azure.storage.connect", connectionString());
    return c;
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  private void stop() {
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException ignored) {
      // best effort: it is a temp dir
    }
  }

  @Override
  public void close() {
    stop();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook is running or about to
    }
  }
}
