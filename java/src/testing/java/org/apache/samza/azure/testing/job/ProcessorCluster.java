package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.samza.azure.testing.FaithfulProxy;

/**
 * Runs {@link OwnershipApp} on several processors, one JVM each, over a shared file input whose
 * partitions get a new line every 50 ms, and answers who holds which partition and whether two
 * processors ever held one at the same time. It composes one part per job: the processors' files
 * ({@link ProcessorFiles}), the input ({@link InputFeeder}), the JVMs ({@link ProcessorJvms}),
 * storage faults ({@link StorageFaults}), the leader ({@link LeaderFinder}) and the tasks' logs
 * ({@link OwnershipLog}); its methods delegate to them.
 *
 * <p>With a {@link FaithfulProxy}, each processor talks to storage through a client endpoint of its
 * own, so faults can target one processor ({@link #outage(String, String, long)} etc. by processor
 * id) or all of them ({@link #ALL}). The harness's own reads ({@link #leader()}) go to storage
 * directly, past any fault. The cluster owns the proxy and closes it in {@link #close()}.
 */
public final class ProcessorCluster implements AutoCloseable {
  /** Fault scope: every processor's endpoint. */
  public static final String ALL = StorageFaults.ALL;

  private final Path dir;
  private final Path configFile;
  private final Properties props;
  private volatile int partitions;
  private final InputFeeder feeder;
  private final ProcessorJvms jvms;
  private final StorageFaults faults;
  private final LeaderFinder leaders;
  private final OwnershipLog log;

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
    this.faults = new StorageFaults(proxy);
    this.dir = dir;
    this.partitions = partitions;
    this.jvms = new ProcessorJvms(dir, jvmArgs, classpath);
    this.log = new OwnershipLog(dir, jvms, faults);
    Files.createDirectories(input(0).getParent());
    for (int p = 0; p < partitions; p++) {
      Files.createFile(input(p));
    }
    String jobName = config.getOrDefault("job.name", "ownership");
    this.leaders = new LeaderFinder(jobName, config, jvms);
    Properties props = new Properties();
    this.props = props;
    props.putAll(config);
    props.put("job.name", jobName);
    props.put("systems.fs.dir", dir.resolve("input").toString());
    props.put("systems.fs.default.stream.samza.offset.default", "upcoming");
    props.put("ownership.log.dir", dir.toString());
    // Tests keep stops short; a benchmark at Samza's defaults passes its own value.
    props.putIfAbsent("task.shutdown.ms", "10000");
    configFile =
        ProcessorFiles.writeShared(
            dir, props, "org.apache.samza.zk.ZkJobCoordinator", "org.apache.samza.coordinator");
    // Line n of every partition is "m<n>" (HighLevelProcessorMain reads its offset from it).
    feeder =
        new InputFeeder(
            (p, round) ->
                Files.write(
                    input(p),
                    ("m" + round + "\n").getBytes(StandardCharsets.UTF_8),
                    StandardOpenOption.APPEND));
    feeder.feed(range(partitions));
  }

  /** Partition {@code p}'s file: stream "input" of the "fs" system. */
  private Path input(int p) {
    return dir.resolve("input").resolve("input").resolve(String.valueOf(p));
  }

  private static List<Integer> range(int n) {
    List<Integer> out = new ArrayList<>();
    for (int p = 0; p < n; p++) {
      out.add(p);
    }
    return out;
  }

  /** Adds partition n (n = the current count) to the input, and feeds it from now on. */
  public void addPartition() throws IOException {
    Files.createFile(input(partitions));
    partitions++;
    feeder.feed(range(partitions));
  }

  public void start(String id) throws IOException {
    start(id, ProcessorMain.class);
  }

  /** Starts processor {@code id} with {@code main} (a class taking the config file and the id). */
  public void start(String id, Class<?> main) throws IOException {
    jvms.start(id, main, processorConfig(id));
  }

  /**
   * Starts a processor whose config differs from the others' in {@code overrides} (for example a
   * storage connection through a proxy of its own).
   */
  public void start(String id, Map<String, String> overrides) throws IOException {
    Properties own = new Properties();
    own.putAll(props);
    own.putAll(overrides);
    jvms.start(id, ProcessorMain.class, ProcessorFiles.writeOwn(dir, id, own, ""));
  }

  /**
   * The config file for processor {@code id}: the shared one, or with a proxy a copy whose
   * connection string is the processor's own client endpoint.
   */
  private Path processorConfig(String id) throws IOException {
    if (faults.proxy() == null) {
      return configFile;
    }
    Properties own = faults.configFor(id, props);
    return ProcessorFiles.writeOwn(dir, id, own, ", proxy client " + faults.client(id));
  }

  // The parts, for what the delegates below do not cover (more fault kinds, say).

  /** The processors' JVMs. */
  public ProcessorJvms jvms() {
    return jvms;
  }

  /** The tasks' ownership logs. */
  public OwnershipLog log() {
    return log;
  }

  /** Storage faults by processor. */
  public StorageFaults faults() {
    return faults;
  }

  // ---- processor JVMs ----

  /** The processor's exit status, or null while it runs (or was never started). */
  public Integer exitStatus(String id) {
    return jvms.exitStatus(id);
  }

  public boolean isRunning(String id) {
    return jvms.isRunning(id);
  }

  /** SIGTERM: Samza stops the processor gracefully. Returns the exit code. */
  public int stop(String id) throws InterruptedException {
    return jvms.stop(id);
  }

  /** SIGKILL. Its partitions count as released at the moment it is dead. */
  public void kill(String id) throws InterruptedException {
    jvms.kill(id);
  }

  /** SIGSTOP / SIGCONT by pid. */
  public void signal(String id, String signal) throws IOException, InterruptedException {
    jvms.signal(id, signal);
  }

  /** The pid of processor {@code id}'s JVM (it writes it at start). */
  public long pid(String id) throws IOException {
    return jvms.pid(id);
  }

  /** Everything a processor printed so far. */
  public List<String> output(String id) throws IOException {
    return jvms.output(id);
  }

  /** The last lines of a processor's output, for failure messages. */
  public String tail(String id, int lines) throws IOException {
    return jvms.tail(id, lines);
  }

  // ---- storage faults ----

  /** Storage outage for processor {@code id} (or {@link #ALL}): mode "refuse" or "silent". */
  public void outage(String id, String mode, long millis) throws IOException {
    faults.outage(id, mode, millis);
  }

  /**
   * Processor {@code id}'s storage is cut now (by this cluster's proxy or another): from now on its
   * holds count by the messages it processes, since its container may be kept, paused.
   */
  public void outageBegan(String id) {
    faults.outageBegan(id);
  }

  /** Storage requests processor {@code id}'s endpoint has received so far. */
  public long requests(String id) throws IOException {
    return faults.requests(id);
  }

  // ---- leader ----

  /** See {@link LeaderFinder#leader()}. */
  public String leader() throws IOException {
    return leaders.leader();
  }

  /** See {@link LeaderFinder#version()}. */
  public long version() throws IOException {
    return leaders.version();
  }

  /** For coordinators other than ours: the log text a processor prints on becoming leader. */
  public void leaderFromLogs(String line) {
    leaders.leaderFromLogs(line);
  }

  // ---- ownership log ----

  public List<OwnershipLog.Hold> holds() throws IOException {
    return log.holds();
  }

  /** See {@link OwnershipLog#overlaps()}. */
  public List<String> overlaps() throws IOException {
    return log.overlaps();
  }

  /** See {@link OwnershipLog#skippedOffsets()}. */
  public Map<Integer, List<Long>> skippedOffsets() throws IOException {
    return log.skippedOffsets();
  }

  /** Waits until every partition's current holder has processed at least {@code messages}. */
  public void awaitHoldersProcessed(int messages, long boundMillis) throws InterruptedException {
    log.awaitHoldersProcessed(messages, boundMillis);
  }

  /** See {@link OwnershipLog#awaitHoldersProcessedFor}. */
  public void awaitHoldersProcessedFor(long spanMillis, long boundMillis)
      throws InterruptedException {
    log.awaitHoldersProcessedFor(spanMillis, boundMillis);
  }

  /** Partition -> processors holding it now. */
  public Map<Integer, List<String>> owners() throws IOException {
    return log.owners();
  }

  /** See {@link OwnershipLog#settled}, over every partition of the input. */
  public boolean settled(List<String> expected, long sinceMillis) throws IOException {
    return log.settled(partitions, expected, sinceMillis);
  }

  /** See {@link OwnershipLog#millisUntilSettled}, over every partition of the input. */
  public long millisUntilSettled(List<String> expected, long sinceMillis, long boundMillis)
      throws IOException, InterruptedException {
    return log.millisUntilSettled(partitions, expected, sinceMillis, boundMillis);
  }

  /** See {@link OwnershipLog#taskStartsSince}. */
  public int taskStartsSince(long t) throws IOException {
    return log.taskStartsSince(t);
  }

  /** See {@link OwnershipLog#firstMessageAfter}. */
  public Map<Integer, Long> firstMessageAfter(long t, String except) throws IOException {
    return log.firstMessageAfter(t, except);
  }

  /** See {@link OwnershipLog#longestGap}. */
  public long longestGap(String id, long from, long to) throws IOException {
    return log.longestGap(id, from, to);
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

  @Override
  public void close() {
    feeder.stop();
    try {
      jvms.close();
    } finally {
      faults.close();
    }
  }
}
