package org.apache.samza.azure.testing;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The Azure-faithful proxy ({@code azure-faithful}, built by cargo) in front of an {@link Azurite}:
 * answers as Azure Storage does where Azurite differs, and injects latency, error bursts, ambiguous
 * writes, connection resets and outages on command or from a seed ({@link #chaos}). One client
 * endpoint per processor ({@link #connectionString(int)}); fault methods take a client index, or
 * {@code -1} for all clients. The process reads its stdin and exits when it closes, so it never
 * outlives this JVM.
 *
 * <p>The binary's path comes from the system property {@code samza.azure.faithful.bin} (set by
 * Gradle), else {@code target/debug/azure-faithful} under the project root.
 */
public final class FaithfulProxy implements AutoCloseable {
  public static final int ALL = -1;
  private static final Pattern CLIENT = Pattern.compile("\\{\"blob\":(\\d+),\"table\":(\\d+)\\}");
  private static final Pattern CONTROL = Pattern.compile("\"control\":(\\d+)");

  private final Process process;
  private final Thread hook;
  private final int[] blobPorts;
  private final int[] tablePorts;
  private final int controlPort;

  private FaithfulProxy(Process process, int[] blobPorts, int[] tablePorts, int controlPort) {
    this.process = process;
    this.blobPorts = blobPorts;
    this.tablePorts = tablePorts;
    this.controlPort = controlPort;
    this.hook = new Thread(this::stop, "faithful-proxy-stop");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  public static File binary() {
    String bin = System.getProperty("samza.azure.faithful.bin");
    return bin != null
        ? new File(bin)
        : new File(Azurite.projectRoot(), "target/debug/azure-faithful");
  }

  /** Starts a proxy with {@code clients} endpoints; {@code profile} is exact or realistic. */
  public static FaithfulProxy start(Azurite azurite, int clients, long seed, String profile)
      throws IOException {
    return start(azurite.blobPort, azurite.tablePort, clients, seed, profile);
  }

  /**
   * Starts a proxy in front of Azurite's blob and table ports, or of anything forwarding to them
   * (e.g. a {@link CountingProxy}).
   */
  public static FaithfulProxy start(
      int blobUpstream, int tableUpstream, int clients, long seed, String profile)
      throws IOException {
    ProcessBuilder pb =
        new ProcessBuilder(
            binary().getPath(),
            "--blob-upstream",
            "127.0.0.1:" + blobUpstream,
            "--table-upstream",
            "127.0.0.1:" + tableUpstream,
            "--clients",
            Integer.toString(clients),
            "--seed",
            Long.toString(seed),
            "--profile",
            profile);
    pb.redirectError(ProcessBuilder.Redirect.INHERIT);
    Process p = pb.start();
    String line;
    try {
      BufferedReader out =
          new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
      line = out.readLine();
    } catch (IOException e) {
      p.destroyForcibly();
      throw e;
    }
    Matcher control = CONTROL.matcher(line == null ? "" : line);
    if (!control.find()) {
      p.destroyForcibly();
      throw new IOException("azure-faithful did not report its ports: " + line);
    }
    List<int[]> ports = new ArrayList<>();
    Matcher m = CLIENT.matcher(line);
    while (m.find()) {
      ports.add(new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))});
    }
    int[] blob = new int[ports.size()];
    int[] table = new int[ports.size()];
    for (int i = 0; i < ports.size(); i++) {
      blob[i] = ports.get(i)[0];
      table[i] = ports.get(i)[1];
    }
    return new FaithfulProxy(p, blob, table, Integer.parseInt(control.group(1)));
  }

  public int clients() {
    return blobPorts.length;
  }

  public int blobPort(int client) {
    return blobPorts[client];
  }

  public int tablePort(int client) {
    return tablePorts[client];
  }

  public int controlPort() {
    return controlPort;
  }

  public String connectionString(int client) {
    return Azurite.connectionString(blobPorts[client], tablePorts[client]);
  }

  private static String scope(int client) {
    return client == ALL ? "\"all\"" : "{\"client\":" + client + "}";
  }

  private static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.append('"').toString();
  }

  private static String partition(String table, String partitionKey) {
    return table == null
        ? "\"account\""
        : "{\"partition\":{\"table\":"
            + quote(table)
            + ",\"partition_key\":"
            + quote(partitionKey)
            + "}}";
  }

  /** An outage of {@code mode} "refuse" or "silent" for {@code millis}. */
  public void outage(int client, String mode, long millis) throws IOException {
    command(
        "{\"op\":\"outage\",\"scope\":"
            + scope(client)
            + ",\"mode\":"
            + quote(mode)
            + ",\"ms\":"
            + millis
            + "}");
  }

  /**
   * A burst of {@code error} ("server_busy" or "operation_timed_out") for {@code millis}, on one
   * table partition, or on the whole account when {@code table} is null. Returns the rule id.
   */
  public long burst(int client, String table, String partitionKey, String error, long millis)
      throws IOException {
    return ruleId(
        command(
            "{\"op\":\"burst\",\"scope\":"
                + scope(client)
                + ",\"target\":"
                + partition(table, partitionKey)
                + ",\"error\":"
                + quote(error)
                + ",\"ms\":"
                + millis
                + "}"));
  }

  /**
   * The next {@code next} writes are applied, then answered with {@code outcome} ("timeout_error",
   * "hang" for {@code hangMillis}, or "reset"). Returns the rule id.
   */
  public long ambiguous(int client, String outcome, int next, long hangMillis) throws IOException {
    return ruleId(
        command(
            "{\"op\":\"ambiguous\",\"scope\":"
                + scope(client)
                + ",\"outcome\":"
                + quote(outcome)
                + ",\"trigger\":{\"next\":"
                + next
                + "},\"hang_ms\":"
                + hangMillis
                + "}"));
  }

  /** The next {@code next} requests get their connection reset, unforwarded. Returns the id. */
  public long reset(int client, int next) throws IOException {
    return ruleId(
        command(
            "{\"op\":\"reset\",\"scope\":"
                + scope(client)
                + ",\"trigger\":{\"next\":"
                + next
                + "}}"));
  }

  /** Latency log-uniform in [minMillis, maxMillis]; with {@code stallRate}, a 0.5–3 s stall. */
  public void latency(int client, long minMillis, long maxMillis, double stallRate)
      throws IOException {
    command(
        "{\"op\":\"latency\",\"scope\":"
            + scope(client)
            + ",\"latency\":{\"min_ms\":"
            + minMillis
            + ",\"max_ms\":"
            + maxMillis
            + ",\"stall_rate\":"
            + stallRate
            + ",\"stall_min_ms\":500,\"stall_max_ms\":3000}}");
  }

  /**
   * Starts a seeded chaos schedule: for {@code durationMillis}, faults drawn from {@code seed}
   * (bursts, ambiguous writes, resets, refuse and silent outages of 1 s up to {@code
   * maxOutageMillis}, at most 60 s), one every {@code meanGapMillis} on average, on {@code client}
   * or, for {@link #ALL}, on one client at random or all. The same seed draws the same schedule.
   * Returns the proxy's reply: the schedule's id (for {@link #remove}) and the faults drawn, to log
   * for a replay.
   */
  public String chaos(
      int client, long seed, long durationMillis, long meanGapMillis, long maxOutageMillis)
      throws IOException {
    return command(
        "{\"op\":\"chaos\",\"scope\":"
            + scope(client)
            + ",\"seed\":"
            + Long.toUnsignedString(seed)
            + ",\"duration_ms\":"
            + durationMillis
            + ",\"mean_gap_ms\":"
            + meanGapMillis
            + ",\"max_outage_ms\":"
            + maxOutageMillis
            + "}");
  }

  /** Removes one rule, or stops one chaos schedule, by the id it was given. */
  public void remove(long id) throws IOException {
    command("{\"op\":\"remove\",\"id\":" + id + "}");
  }

  /** Ends the scope's outages, removes its rules and stops its chaos schedules. */
  public void clear(int client) throws IOException {
    command("{\"op\":\"clear\",\"scope\":" + scope(client) + "}");
  }

  /** Per-client counters, as the JSON the proxy returns. */
  public String stats() throws IOException {
    return command("{\"op\":\"stats\"}");
  }

  /** Requests each client endpoint received so far (the proxy's own counters). */
  public long[] requests() throws IOException {
    List<Long> counts = new ArrayList<>();
    Matcher m = Pattern.compile("\"requests\":(\\d+)").matcher(stats());
    while (m.find()) {
      counts.add(Long.parseLong(m.group(1)));
    }
    long[] out = new long[counts.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = counts.get(i);
    }
    return out;
  }

  private static long ruleId(String reply) throws IOException {
    Matcher m = Pattern.compile("\"id\":(\\d+)").matcher(reply);
    if (!m.find()) {
      throw new IOException("no rule id in " + reply);
    }
    return Long.parseLong(m.group(1));
  }

  /** Sends one JSON command to the control port; throws on a refused command. */
  public String command(String json) throws IOException {
    HttpURLConnection c =
        (HttpURLConnection) new URL("http://127.0.0.1:" + controlPort + "/").openConnection();
    c.setConnectTimeout(5_000);
    c.setReadTimeout(10_000);
    c.setRequestMethod("POST");
    c.setDoOutput(true);
    c.setRequestProperty("Content-Type", "application/json");
    try (OutputStream out = c.getOutputStream()) {
      out.write(json.getBytes(StandardCharsets.UTF_8));
    }
    int status = c.getResponseCode();
    InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream();
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    if (in != null) {
      try (InputStream is = in) {
        byte[] buf = new byte[4096];
        int n;
        while ((n = is.read(buf)) > 0) {
          body.write(buf, 0, n);
        }
      }
    }
    String reply = new String(body.toByteArray(), StandardCharsets.UTF_8);
    if (status != 200) {
      throw new IOException("azure-faithful refused " + json + ": " + reply);
    }
    return reply;
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  private void stop() {
    try {
      // Closing stdin is the proxy's signal to exit.
      process.getOutputStream().close();
    } catch (IOException ignored) {
      // it may be gone already
    }
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
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
