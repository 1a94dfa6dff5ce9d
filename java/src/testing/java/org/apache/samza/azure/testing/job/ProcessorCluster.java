package org.apache.samza.azure.testing.job;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.samza.azure.errors.StorageNotFoundException;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.storage.AzureStorageClient;
import org.apache.samza.azure.testing.FaithfulProxy;

/**
 * Runs {@link OwnershipApp} on several processors, one JVM each, over a shared file input whose
 * partitions get a new line every 50 ms. Reads back the ownership logs the tasks write, to tell who
 * holds which partition and whether two processors ever held one at the same time.
 *
 * <p>With a {@link FaithfulProxy}, each processor talks to storage through a client endpoint of its
 * own (the first processor started gets client 0, the next client 1, ...; a restarted id keeps its
 * client), so faults can target one processor ({@link #outage(String, String, long)} etc. by
 * processor id) or all of them ({@link #ALL}). The harness's own reads ({@link #leader()}) go to
 * storage directly, past any fault. The cluster owns the proxy and closes it in {@link #close()}.
 */
public final class ProcessorCluster implements AutoCloseable {
  /** A container that processed nothing for this long after its storage was cut is paused. */
  private static final long PAUSED_AFTER_MS = 1_000;

  /** Fault scope: every processor's endpoint. */
  public static final String ALL = "all";

  private static final String[] CONNECT_KEYS = {
    "sensitive.azure.storage.connect", "azure.storage.connect"
  };

  private final Path dir;
  private final Path configFile;
  private final Properties props;
  private volatile int partitions;
  private final List<String> jvmArgs;
  private final String classpath;
  private final Map<String, Process> processes = new ConcurrentHashMap<>();
  private final Map<String, Long> endedAt = new ConcurrentHashMap<>();

  /** Per processor, [SIGSTOP time, SIGCONT time] windows (end MAX_VALUE while stopped). */
  private final Map<String, List<long[]>> pauses = new ConcurrentHashMap<>();

  /**
   * Per processor, when a storage outage of its own began. From then on its processing may pause at
   * its self-fence with its container kept, so its holds are judged by the messages it processed,
   * as after a SIGSTOP.
   */
  private final Map<String, List<Long>> outages = new ConcurrentHashMap<>();

  private final Thread feeder;
  private final String jobName;
  private volatile String leaderLogLine;
  private final Map<String, String> storageConfig = new HashMap<>();
  private static final Pattern LEADER = Pattern.compile("\"leader\":\"([^\"]*)\"");
  private static final Pattern VERSION = Pattern.compile("\"version\":([0-9]+)");
  private volatile boolean feeding = true;
  private final FaithfulProxy proxy;
  private final Map<String, Integer> clients = new ConcurrentHashMap<>();

  /**
   * @param config Samza config shared by all processors (storage, job name, timing)
   * @param jvmArgs extra JVM flags for each processor (Samza needs --add-opens on Java 17)
   * @param classpath the processors' classpath (this project's classes and Samza)
   */
  public ProcessorCluster(
      Path dir, Map<String, String> config, int partitions, List<String> jvmArgs, String classpath)
      throws IOException {
    this(dir, config, partitions, jvmArgs, classpath, null);
  }

  /**
   * Processors reach storage through {@code proxy} (null: directly), one client endpoint each;
   * {@code config}'s connection string is the harness's own, straight to storage. The cluster
   * closes the proxy when it closes (closing it twice is harmless, so callers may also hold it in a
   * try-with-resources for the case where this constructor throws).
   */
  public ProcessorCluster(
      Path dir,
      Map<String, String> config,
      int partitions,
      List<String> jvmArgs,
      String classpath,
      FaithfulProxy proxy)
      throws IOException {
    this.proxy = proxy;
    this.dir = dir;
    this.partitions = partitions;
    this.jvmArgs = jvmArgs;
    this.classpath = classpath;
    Path input = dir.resolve("input").resolve("input");
    Files.createDirectories(input);
    for (int p = 0; p < partitions; p++) {
      Files.createFile(input.resolve(String.valueOf(p)));
    }
    this.jobName = config.getOrDefault("job.name", "ownership");
    config.forEach(
        (k, v) -> {
          if (k.startsWith("azure.storage.") || k.startsWith("sensitive.azure.storage.")) {
            storageConfig.put(k, v);
          }
        });
    Properties props = new Properties();
    this.props = props;
    props.putAll(config);
    props.put("job.name", config.getOrDefault("job.name", "ownership"));
    props.put("systems.fs.dir", dir.resolve("input").toString());
    props.put("systems.fs.default.stream.samza.offset.default", "upcoming");
    props.put("ownership.log.dir", dir.toString());
    // Tests keep stops short; a benchmark at Samza's defaults passes its own value.
    props.putIfAbsent("task.shutdown.ms", "10000");
    configFile =
        writeProcessorFiles(
            dir, props, "org.apache.samza.zk.ZkJobCoordinator", "org.apache.samza.coordinator");
    feeder = new Thread(this::feed, "input-feeder");
    feeder.setDaemon(true);
    feeder.start();
  }

  /**
   * Writes the processors' config ({@code dir/processor.properties}, returned) and a logback config
   * logging ours and {@code infoLoggers} at INFO, everything else at WARN.
   */
  public static Path writeProcessorFiles(Path dir, Properties props, String... infoLoggers)
      throws IOException {
    Path configFile = dir.resolve("processor.properties");
    try (OutputStream out = Files.newOutputStream(configFile)) {
      props.store(out, "written by the test harness");
    }
    StringBuilder loggers = new StringBuilder();
    for (String name : new String[] {"org.apache.samza.azure", "samza_azure_coordinator"}) {
      loggers.append("<logger name=\"").append(name).append("\" level=\"INFO\"/>");
    }
    for (String name : infoLoggers) {
      loggers.append("<logger name=\"").append(name).append("\" level=\"INFO\"/>");
    }
    Files.write(
        dir.resolve("logback.xml"),
        ("<configuration><appender name=\"OUT\" class=\"ch.qos.logback.core.ConsoleAppender\">"
                + "<encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{30} - %msg%n"
                + "</pattern></encoder></appender>"
                + loggers
                + "<root level=\"WARN\"><appender-ref ref=\"OUT\"/></root></configuration>")
            .getBytes(StandardCharsets.UTF_8));
    return configFile;
  }

  private void feed() {
    long n = 0;
    try {
      while (feeding) {
        for (int p = 0; p < partitions; p++) {
          Path file = dir.resolve("input").resolve("input").resolve(String.valueOf(p));
          Files.write(
              file, ("m" + n + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.APPEND);
        }
        n++;
        Thread.sleep(50);
      }
    } catch (IOException | InterruptedException e) {
      // stopped
    }
  }

  /** Adds partition n (n = the current count) to the input, and feeds it from now on. */
  public void addPartition() throws IOException {
    Files.createFile(dir.resolve("input").resolve("input").resolve(String.valueOf(partitions)));
    partitions++;
  }

  public void start(String id) throws IOException {
    start(id, ProcessorMain.class);
  }

  /** Starts processor {@code id} with {@code main} (a class taking the config file and the id). */
  public void start(String id, Class<?> main) throws IOException {
    processes.put(id, launch(dir, jvmArgs, classpath, main, processorConfig(id), id));
    endedAt.remove(id);
  }

  /**
   * Starts a processor whose config differs from the others' in {@code overrides} (for example a
   * storage connection through a proxy of its own).
   */
  public void start(String id, Map<String, String> overrides) throws IOException {
    Properties own = new Properties();
    own.putAll(props);
    own.putAll(overrides);
    Path file = dir.resolve(id + ".properties");
    try (OutputStream out = Files.newOutputStream(file)) {
      own.store(out, "written by the test harness for " + id);
    }
    processes.put(id, launch(dir, jvmArgs, classpath, ProcessorMain.class, file, id));
    endedAt.remove(id);
  }

  /** The processor's exit status, or null while it runs (or was never started). */
  public Integer exitStatus(String id) {
    Process p = processes.get(id);
    return p == null || p.isAlive() ? null : p.exitValue();
  }

  /**
   * The config file for processor {@code id}: the shared one, or with a proxy a copy whose
   * connection string is the processor's own client endpoint.
   */
  private synchronized Path processorConfig(String id) throws IOException {
    if (proxy == null) {
      return configFile;
    }
    Integer client = clients.get(id);
    if (client == null) {
      client = clients.size();
      if (client >= proxy.clients()) {
        throw new IllegalStateException(
            "processor "
                + id
                + " would be the "
                + (client + 1)
                + "th, but the proxy has "
                + proxy.clients()
                + " client endpoints");
      }
      clients.put(id, client);
    }
    Properties own = new Properties();
    own.putAll(props);
    boolean set = false;
    for (String key : CONNECT_KEYS) {
      if (own.containsKey(key)) {
        own.put(key, proxy.connectionString(client));
        set = true;
      }
    }
    if (!set) {
      own.put(CONNECT_KEYS[0], proxy.connectionString(client));
    }
    Path file = dir.resolve(id + ".properties");
    try (OutputStream out = Files.newOutputStream(file)) {
      own.store(out, "written by the test harness for " + id + ", proxy client " + client);
    }
    return file;
  }

  /** The proxy in front of storage, or null when processors reach storage directly. */
  public FaithfulProxy proxy() {
    return proxy;
  }

  /** The proxy client endpoint of processor {@code id}, or {@link FaithfulProxy#ALL} for ALL. */
  public int client(String id) {
    if (proxy == null) {
      throw new IllegalStateException("processors reach storage directly: no faults to inject");
    }
    if (ALL.equals(id)) {
      return FaithfulProxy.ALL;
    }
    Integer client = clients.get(id);
    if (client == null) {
      throw new IllegalArgumentException("processor " + id + " was never started");
    }
    return client;
  }

  /** Storage outage for processor {@code id} (or {@link #ALL}): mode "refuse" or "silent". */
  public void outage(String id, String mode, long millis) throws IOException {
    for (String each : ALL.equals(id) ? new ArrayList<>(clients.keySet()) : Arrays.asList(id)) {
      outageBegan(each);
    }
    proxy.outage(client(id), mode, millis);
  }

  /**
   * Processor {@code id}'s storage is cut now (by this cluster's proxy or another): from now on its
   * holds count by the messages it processes, since its container may be kept, paused.
   */
  public void outageBegan(String id) {
    outages.computeIfAbsent(id, k -> new ArrayList<>()).add(System.currentTimeMillis());
  }

  /**
   * 503 ServerBusy ("server_busy") or 500 OperationTimedOut ("operation_timed_out") for {@code id}
   * (or {@link #ALL}) on one table partition, or the whole account when {@code table} is null.
   * Returns the rule id.
   */
  public long burst(String id, String table, String partitionKey, String error, long millis)
      throws IOException {
    return proxy.burst(client(id), table, partitionKey, error, millis);
  }

  /** {@code id}'s next {@code next} writes are applied, then answered with {@code outcome}. */
  public long ambiguous(String id, String outcome, int next, long hangMillis) throws IOException {
    return proxy.ambiguous(client(id), outcome, next, hangMillis);
  }

  /** {@code id}'s next {@code next} requests get their connection reset. */
  public long reset(String id, int next) throws IOException {
    return proxy.reset(client(id), next);
  }

  /** Latency for {@code id}'s requests (see {@link FaithfulProxy#latency}). */
  public void latency(String id, long minMillis, long maxMillis, double stallRate)
      throws IOException {
    proxy.latency(client(id), minMillis, maxMillis, stallRate);
  }

  /** Ends {@code id}'s outages and removes its fault rules. */
  public void clearFaults(String id) throws IOException {
    proxy.clear(client(id));
  }

  /** Storage requests processor {@code id}'s endpoint has received so far. */
  public long requests(String id) throws IOException {
    return proxy.requests()[client(id)];
  }

  /**
   * Starts {@code main <configFile> <id>} in a JVM of its own, with the logback config in {@code
   * dir}, output to {@code dir/<id>.out}.
   */
  public static Process launch(
      Path dir, List<String> jvmArgs, String classpath, Class<?> main, Path configFile, String id)
      throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
    cmd.addAll(jvmArgs);
    cmd.add("-Xmx256m");
    cmd.add("-Dlogback.configurationFile=" + dir.resolve("logback.xml"));
    cmd.add("-cp");
    cmd.add(classpath);
    cmd.add(main.getName());
    cmd.add(configFile.toString());
    cmd.add(id);
    return new ProcessBuilder(cmd)
        .redirectErrorStream(true)
        .redirectOutput(dir.resolve(id + ".out").toFile())
        .start();
  }

  public boolean isRunning(String id) {
    Process p = processes.get(id);
    return p != null && p.isAlive();
  }

  /** SIGTERM: Samza stops the processor gracefully. Returns the exit code. */
  public int stop(String id) throws InterruptedException {
    Process p = processes.get(id);
    p.destroy();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      throw new AssertionError(id + " did not stop within 60 s of SIGTERM");
    }
    endedAt.put(id, System.currentTimeMillis());
    return p.exitValue();
  }

  /** SIGKILL. Its partitions count as released at the moment it is dead. */
  public void kill(String id) throws InterruptedException {
    Process p = processes.get(id);
    p.destroyForcibly().waitFor();
    endedAt.put(id, System.currentTimeMillis());
  }

  /** SIGSTOP / SIGCONT by pid. */
  public void signal(String id, String signal) throws IOException, InterruptedException {
    long pid = pid(id);
    long before = System.currentTimeMillis();
    Process kill =
        new ProcessBuilder("kill", "-" + signal, String.valueOf(pid)).inheritIO().start();
    if (kill.waitFor() != 0) {
      throw new IOException("kill -" + signal + " " + pid + " failed");
    }
    if (signal.equals("STOP")) {
      // Frozen from the moment the signal was sent at the latest.
      pauses.computeIfAbsent(id, k -> new ArrayList<>()).add(new long[] {before, Long.MAX_VALUE});
    } else if (signal.equals("CONT")) {
      List<long[]> p = pauses.get(id);
      p.get(p.size() - 1)[1] = System.currentTimeMillis();
    }
  }

  /**
   * The current leader: for our coordinator, the processor named by the JobModel document in
   * storage; for others (ZooKeeper, upstream samza-azure), the live processor that most recently
   * logged becoming leader. Null if none is known.
   */
  public String leader() throws IOException {
    if (leaderLogLine == null) {
      String[] names = Native.jobStorageNames(jobName, "1");
      try (AzureStorageClient client = AzureStorageClient.open(storageConfig)) {
        String doc =
            new String(client.readDocument(names[0], "jobmodel").body(), StandardCharsets.UTF_8);
        Matcher m = LEADER.matcher(doc.substring(0, Math.max(0, doc.indexOf('\n'))));
        return m.find() && !m.group(1).isEmpty() ? m.group(1) : null;
      } catch (StorageNotFoundException e) {
        return null;
      }
    }
    String leader = null;
    String latest = "";
    for (String id : processes.keySet()) {
      if (!isRunning(id)) {
        continue;
      }
      for (String line : output(id)) {
        // Lines start with HH:mm:ss.SSS, so they sort by time within a run.
        if (line.contains(leaderLogLine) && line.compareTo(latest) > 0) {
          latest = line;
          leader = id;
        }
      }
    }
    return leader;
  }

  /**
   * The JobModel version the document in storage names (our coordinator only), or 0 when there is
   * no document yet. Read past any fault, like {@link #leader()}.
   */
  public long version() throws IOException {
    String[] names = Native.jobStorageNames(jobName, "1");
    try (AzureStorageClient client = AzureStorageClient.open(storageConfig)) {
      String doc =
          new String(client.readDocument(names[0], "jobmodel").body(), StandardCharsets.UTF_8);
      Matcher m = VERSION.matcher(doc.substring(0, Math.max(0, doc.indexOf('\n'))));
      if (!m.find()) {
        throw new IOException("JobModel document header names no version: " + doc);
      }
      return Long.parseLong(m.group(1));
    } catch (StorageNotFoundException e) {
      return 0;
    }
  }

  /** The pid of processor {@code id}'s JVM (it writes it at start). */
  public long pid(String id) throws IOException {
    return Long.parseLong(
        new String(Files.readAllBytes(dir.resolve(id + ".pid")), StandardCharsets.UTF_8).trim());
  }

  /** Every "start" line (a task starting in a container) any processor logged at or after t. */
  public int taskStartsSince(long t) throws IOException {
    int n = 0;
    for (Hold h : holds()) {
      // Holds split at an outage or pause begin at the cut, not at a task start.
      if (h.start >= t && !h.afterPause) {
        n++;
      }
    }
    return n;
  }

  /**
   * Partition -> the time of its first message processed after {@code t} by a processor other than
   * {@code except} (null: by anyone); partitions with none are absent.
   */
  public Map<Integer, Long> firstMessageAfter(long t, String except) throws IOException {
    Map<Integer, Long> out = new TreeMap<>();
    for (String[] f : messageLines(null)) {
      long at = Long.parseLong(f[4]);
      if (!f[1].equals(except) && at > t) {
        out.merge(Integer.parseInt(f[2]), at, Math::min);
      }
    }
    return out;
  }

  /**
   * The fields of every "msg" line ({@code msg <processor> <partition> <offset> <millis>}) in the
   * log of processor {@code id}, or in every log when {@code id} is null.
   */
  private List<String[]> messageLines(String id) throws IOException {
    List<String[]> out = new ArrayList<>();
    File[] logs =
        id == null
            ? dir.toFile().listFiles((d, name) -> name.endsWith(".log"))
            : new File[] {dir.resolve(id + ".log").toFile()};
    for (File log : logs == null ? new File[0] : logs) {
      for (String line : Files.readAllLines(log.toPath(), StandardCharsets.UTF_8)) {
        String[] f = line.split(" ");
        if (f.length == 5 && f[0].equals("msg")) {
          out.add(f);
        }
      }
    }
    return out;
  }

  /**
   * Processor {@code id}'s longest stretch without processing any message between {@code from} and
   * {@code to} (ends included as bounds), in ms.
   */
  public long longestGap(String id, long from, long to) throws IOException {
    List<Long> times = new ArrayList<>();
    for (String[] f : messageLines(id)) {
      long at = Long.parseLong(f[4]);
      if (at >= from && at <= to) {
        times.add(at);
      }
    }
    Collections.sort(times);
    long gap = 0;
    long last = from;
    for (long at : times) {
      gap = Math.max(gap, at - last);
      last = at;
    }
    return Math.max(gap, to - last);
  }

  /** For coordinators other than ours: the log text a processor prints on becoming leader. */
  public void leaderFromLogs(String line) {
    leaderLogLine = line;
  }

  /** One hold of a partition by a processor, from its task's start to its stop (or death). */
  public static final class Hold {
    public final String processor;
    public final int partition;
    public final long start;
    public long end = Long.MAX_VALUE;
    public long messages;
    public long lastMessage;
    public long firstMessage;

    /** Resumed after a SIGSTOP: what it did before its container stopped is what matters. */
    public boolean afterPause;

    Hold(String processor, int partition, long start) {
      this.processor = processor;
      this.partition = partition;
      this.start = start;
    }

    @Override
    public String toString() {
      return processor
          + "@"
          + partition
          + "["
          + start
          + ","
          + (end == Long.MAX_VALUE ? "now" : String.valueOf(end))
          + "] msgs="
          + messages
          + (afterPause ? " (after SIGCONT)" : "");
    }
  }

  public List<Hold> holds() throws IOException {
    List<Hold> all = new ArrayList<>();
    File[] logs = dir.toFile().listFiles((d, name) -> name.endsWith(".log"));
    if (logs == null) {
      return all;
    }
    for (File log : logs) {
      String id = log.getName().substring(0, log.getName().length() - 4);
      List<Hold> mine = new ArrayList<>();
      List<long[]> messages = new ArrayList<>();
      Map<Integer, Hold> open = new HashMap<>();
      for (String line : Files.readAllLines(log.toPath(), StandardCharsets.UTF_8)) {
        String[] f = line.split(" ");
        if (f.length != 5) {
          continue; // a line being written
        }
        int partition = Integer.parseInt(f[2]);
        long t = Long.parseLong(f[4]);
        if (f[0].equals("start")) {
          Hold h = new Hold(id, partition, t);
          open.put(partition, h);
          mine.add(h);
        } else if (f[0].equals("stop") && open.containsKey(partition)) {
          open.remove(partition).end = t;
        } else if (f[0].equals("msg")) {
          messages.add(new long[] {partition, t});
        }
      }
      Long ended = endedAt.get(id);
      if (ended != null) {
        for (Hold h : open.values()) {
          h.end = ended;
        }
      }
      List<Hold> parts = splitAtPauses(mine);
      for (long[] m : messages) {
        for (Hold h : parts) {
          if (h.partition == m[0] && h.start <= m[1] && m[1] <= h.end) {
            if (h.messages++ == 0) {
              h.firstMessage = m[1];
            }
            h.lastMessage = m[1];
          }
        }
      }
      all.addAll(parts);
    }
    return all;
  }

  /**
   * A frozen process processes nothing, so a hold spanning a SIGSTOP splits in two: the part
   * before, and the part after SIGCONT until the container stopped. The second is judged by the
   * messages it processed, which is the double processing that could happen.
   */
  private List<Hold> splitAtPauses(List<Hold> holds) {
    List<Hold> out = new ArrayList<>();
    for (Hold h : holds) {
      List<long[]> windows = pauses.getOrDefault(h.processor, Collections.<long[]>emptyList());
      Hold rest = h;
      for (long cut : outages.getOrDefault(h.processor, Collections.<Long>emptyList())) {
        if (rest.start < cut && cut < rest.end) {
          Hold before = new Hold(h.processor, h.partition, rest.start);
          before.end = cut;
          out.add(before);
          Hold after = new Hold(h.processor, h.partition, cut);
          after.end = rest.end;
          after.afterPause = true;
          rest = after;
        }
      }
      for (long[] w : windows) {
        if (rest.start < w[0] && w[0] < rest.end) {
          Hold before = new Hold(h.processor, h.partition, rest.start);
          before.end = w[0];
          out.add(before);
          Hold after = new Hold(h.processor, h.partition, Math.min(w[1], rest.end));
          after.end = rest.end;
          after.afterPause = true;
          rest = after;
        }
      }
      out.add(rest);
    }
    return out;
  }

  /**
   * Every pair of holds of one partition by two processors that overlap in time. A hold resumed
   * after a SIGSTOP counts from its first to its last processed message (none: no overlap).
   */
  public List<String> overlaps() throws IOException {
    List<String> out = new ArrayList<>();
    List<Hold> holds = holds();
    for (Hold a : holds) {
      for (Hold b : holds) {
        if (a.partition == b.partition
            && a.processor.compareTo(b.processor) < 0
            && activeFrom(a) < activeTo(b)
            && activeFrom(b) < activeTo(a)) {
          out.add(a + " overlaps " + b);
        }
      }
    }
    return out;
  }

  private static long activeFrom(Hold h) {
    return h.afterPause ? (h.messages == 0 ? Long.MAX_VALUE : h.firstMessage) : h.start;
  }

  private static long activeTo(Hold h) {
    return h.afterPause ? (h.messages == 0 ? Long.MIN_VALUE : h.lastMessage + 1) : h.end;
  }

  /** Partition -> every offset any processor processed from it. */
  public Map<Integer, java.util.TreeSet<Long>> processedOffsets() throws IOException {
    Map<Integer, java.util.TreeSet<Long>> out = new TreeMap<>();
    for (String[] f : messageLines(null)) {
      out.computeIfAbsent(Integer.parseInt(f[2]), k -> new java.util.TreeSet<>())
          .add(Long.parseLong(f[3]));
    }
    return out;
  }

  /** Waits until every partition's current holder has processed at least {@code messages}. */
  public void awaitHoldersProcessed(int messages, long boundMillis) throws InterruptedException {
    org.apache.samza.azure.testing.Await.until(
        "every holder to process " + messages + " messages",
        boundMillis,
        () -> {
          try {
            return holds().stream()
                .filter(h -> h.end == Long.MAX_VALUE)
                .allMatch(h -> h.messages >= messages);
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
  }

  /**
   * Waits until every partition's current holder has been processing it for at least {@code
   * spanMillis} (from its first to its last processed message in this hold). Unlike a message
   * count, a backlog processed in a burst right after the hold started does not satisfy it, so a
   * holder has run through several commit intervals before, say, a kill.
   */
  public void awaitHoldersProcessedFor(long spanMillis, long boundMillis)
      throws InterruptedException {
    org.apache.samza.azure.testing.Await.until(
        "every holder to process messages for " + spanMillis + " ms",
        boundMillis,
        () -> {
          try {
            return holds().stream()
                .filter(h -> h.end == Long.MAX_VALUE)
                .allMatch(h -> h.messages > 0 && h.lastMessage - h.firstMessage >= spanMillis);
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
  }

  /**
   * Partition -> offsets between its first and last processed offset that no processor processed
   * (empty lists when nothing was skipped); every partition that processed anything is a key.
   */
  public Map<Integer, List<Long>> skippedOffsets() throws IOException {
    Map<Integer, List<Long>> out = new TreeMap<>();
    for (Map.Entry<Integer, java.util.TreeSet<Long>> e : processedOffsets().entrySet()) {
      java.util.TreeSet<Long> offsets = e.getValue();
      List<Long> missing = new ArrayList<>();
      for (long o = offsets.first(); o <= offsets.last(); o++) {
        if (!offsets.contains(o)) {
          missing.add(o);
        }
      }
      out.put(e.getKey(), missing);
    }
    return out;
  }

  /** Partition -> processors holding it now. */
  public Map<Integer, List<String>> owners() throws IOException {
    return owners(holds());
  }

  private static Map<Integer, List<String>> owners(List<Hold> holds) {
    Map<Integer, List<String>> owners = new TreeMap<>();
    long now = System.currentTimeMillis();
    for (Hold h : holds) {
      // A frozen (SIGSTOPped, not yet continued) processor holds nothing it can process; nor
      // does a container kept paused after its storage was cut: with input arriving every
      // 50 ms, one that processed nothing for a second is paused.
      boolean paused = h.afterPause && (h.messages == 0 || now - h.lastMessage > PAUSED_AFTER_MS);
      if (h.end == Long.MAX_VALUE && h.start != Long.MAX_VALUE && !paused) {
        owners.computeIfAbsent(h.partition, k -> new ArrayList<>()).add(h.processor);
      }
    }
    return owners;
  }

  /**
   * True when every partition has exactly one live owner among {@code expected} (and each of them
   * owns something, when there are at least as many partitions), and each owner has processed a
   * message that arrived after {@code sinceMillis}.
   */
  public boolean settled(List<String> expected, long sinceMillis) throws IOException {
    List<Hold> holds = holds();
    Map<Integer, List<String>> owners = owners(holds);
    if (owners.size() != partitions) {
      return false;
    }
    Map<String, Integer> perProcessor = new HashMap<>();
    for (List<String> o : owners.values()) {
      if (o.size() != 1 || !expected.contains(o.get(0)) || !isRunning(o.get(0))) {
        return false;
      }
      perProcessor.merge(o.get(0), 1, Integer::sum);
    }
    if (partitions >= expected.size() && perProcessor.size() != expected.size()) {
      return false;
    }
    for (Hold h : holds) {
      if (h.end == Long.MAX_VALUE && h.start != Long.MAX_VALUE && h.lastMessage <= sinceMillis) {
        return false;
      }
    }
    return true;
  }

  /**
   * Milliseconds from {@code sinceMillis} until {@link #settled} holds for {@code expected}, or -1
   * if it did not within {@code boundMillis} of it (benchmarks report that rather than fail).
   */
  public long millisUntilSettled(List<String> expected, long sinceMillis, long boundMillis)
      throws IOException, InterruptedException {
    while (System.currentTimeMillis() - sinceMillis < boundMillis) {
      if (settled(expected, sinceMillis)) {
        return System.currentTimeMillis() - sinceMillis;
      }
      Thread.sleep(20);
    }
    return -1;
  }

  public String describe() throws IOException {
    return describe(owners());
  }

  /** The table of {@code owners} (one snapshot, so the table and a check agree). */
  public String describe(Map<Integer, List<String>> owners) throws IOException {
    Map<String, List<Integer>> byProcessor = new TreeMap<>();
    owners.forEach(
        (p, ids) ->
            ids.forEach(id -> byProcessor.computeIfAbsent(id, k -> new ArrayList<>()).add(p)));
    StringBuilder sb = new StringBuilder();
    String leader = leader();
    for (Map.Entry<String, List<Integer>> e : byProcessor.entrySet()) {
      Collections.sort(e.getValue());
      sb.append(
          String.format(
              "  %-4s %-8s partitions %s%n",
              e.getKey(), e.getKey().equals(leader) ? "(leader)" : "", e.getValue()));
    }
    return sb.toString();
  }

  public Path dir() {
    return dir;
  }

  /** Everything a processor printed so far. */
  public List<String> output(String id) throws IOException {
    return Files.readAllLines(dir.resolve(id + ".out"), StandardCharsets.UTF_8);
  }

  /** The last lines of a processor's output, for failure messages. */
  public String tail(String id, int lines) throws IOException {
    List<String> all = Files.readAllLines(dir.resolve(id + ".out"), StandardCharsets.UTF_8);
    return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
  }

  @Override
  public void close() {
    feeding = false;
    try {
      for (Process p : processes.values()) {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      if (proxy != null) {
        proxy.close();
      }
    }
  }
}
