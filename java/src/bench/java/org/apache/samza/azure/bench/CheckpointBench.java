package org.apache.samza.azure.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.samza.Partition;
import org.apache.samza.azure.AzureCheckpointManagerFactory;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.checkpoint.CheckpointManager;
import org.apache.samza.checkpoint.CheckpointManagerFactory;
import org.apache.samza.checkpoint.CheckpointV1;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.apache.samza.system.SystemStreamPartition;

/**
 * Checkpoint commit throughput and latency: one thread commits each task in turn (as a container's
 * run loop does), a CheckpointV1 of 8 SSPs per task, against one local Azurite. Compares our
 * manager with upstream samza-azure 1.8.0's AzureCheckpointManager when its classes are on the
 * classpath (gradle checkpointBench -PsamzaSource=...).
 *
 * <p>Usage: {@code CheckpointBench [seconds per case] [task counts, comma-separated] [threads,
 * comma-separated]}. With several threads each commits its own share of the tasks, in turn. The
 * thread count {@code samza} (the default) is the concurrency of a Samza 1.8 container's commits:
 * its commit pool has {@code min(max(2 * tasks, job.container.commit.thread.pool.size = 2),
 * job.container.commit.thread.pool.max.size = 64)} threads, and a task has at most one commit in
 * flight, so 1 task commits sequentially, 16 tasks 16 at a time and 256 tasks 64 at a time.
 */
public final class CheckpointBench {
  private static final String UPSTREAM =
      "org.apache.samza.checkpoint.azure.AzureCheckpointManagerFactory";
  private static final int SSPS = 8;

  public static void main(String[] args) throws Exception {
    int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
    List<Integer> counts = new ArrayList<>();
    for (String c : (args.length > 1 ? args[1] : "1,16,256").split(",")) {
      counts.add(Integer.parseInt(c));
    }
    List<String> threadCounts = Arrays.asList((args.length > 2 ? args[2] : "samza").split(","));
    Map<String, CheckpointManagerFactory> impls = new java.util.LinkedHashMap<>();
    impls.put("ours", new AzureCheckpointManagerFactory());
    try {
      impls.put(
          "upstream",
          (CheckpointManagerFactory) Class.forName(UPSTREAM).getConstructor().newInstance());
    } catch (ClassNotFoundException e) {
      System.out.println("upstream samza-azure not on the classpath (-PsamzaSource): ours only");
    }
    List<String> rows = new ArrayList<>();
    try (Azurite azurite = Azurite.start()) {
      int job = 0;
      for (int tasks : counts) {
        Set<Integer> cases = new TreeSet<>();
        for (String t : threadCounts) {
          int threads = t.equals("samza") ? samzaCommitConcurrency(tasks) : threadCount(t);
          if (threads <= tasks) {
            cases.add(threads);
          }
        }
        for (int threads : cases) {
          for (Map.Entry<String, CheckpointManagerFactory> impl : impls.entrySet()) {
            Map<String, String> config = new HashMap<>();
            config.put("job.name", "cpbench" + impl.getKey() + (job++));
            config.put("azure.storage.connect", azurite.connectionString());
            config.put("processor.id", "bench");
            rows.add(
                run(
                    impl.getKey(),
                    impl.getValue(),
                    new MapConfig(config),
                    tasks,
                    threads,
                    seconds));
            System.out.println(rows.get(rows.size() - 1));
          }
        }
      }
    }
    System.out.println();
    System.out.println("| manager | tasks | threads | commits | commits/s | p50 ms | p99 ms |");
    System.out.println("|---|---:|---:|---:|---:|---:|---:|");
    rows.forEach(System.out::println);
  }

  private static int threadCount(String arg) {
    try {
      int n = Integer.parseInt(arg);
      if (n > 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new IllegalArgumentException(
        "thread count '" + arg + "': expected a positive integer or 'samza'");
  }

  /** Commits in flight at once in a Samza 1.8 container of {@code tasks} tasks, at defaults. */
  static int samzaCommitConcurrency(int tasks) {
    int pool = Math.min(Math.max(2 * tasks, 2), 64);
    return Math.min(tasks, pool);
  }

  private static String run(
      String name,
      CheckpointManagerFactory factory,
      MapConfig config,
      int tasks,
      int threads,
      int seconds)
      throws InterruptedException {
    CheckpointManager m = factory.getCheckpointManager(config, new MetricsRegistryMap());
    List<TaskName> names = new ArrayList<>();
    List<CheckpointV1> checkpoints = new ArrayList<>();
    for (int t = 0; t < tasks; t++) {
      TaskName task = new TaskName("Partition " + t);
      names.add(task);
      m.register(task);
      Map<SystemStreamPartition, String> offsets = new HashMap<>();
      for (int s = 0; s < SSPS; s++) {
        offsets.put(
            new SystemStreamPartition("eventhubs", "stream-" + s, new Partition(t)),
            String.valueOf(1_000_000L * s + t));
      }
      checkpoints.add(new CheckpointV1(offsets));
    }
    m.createResources();
    m.start();
    // Warm-up: every task once, plus two seconds.
    long warm = System.nanoTime() + 2_000_000_000L;
    int i = 0;
    while (i < tasks || System.nanoTime() < warm) {
      m.writeCheckpoint(names.get(i % tasks), checkpoints.get(i % tasks));
      i++;
    }
    long[][] latencies = new long[threads][];
    int[] counts = new int[threads];
    long start = System.nanoTime();
    long end = start + seconds * 1_000_000_000L;
    long[] finished = new long[threads];
    Thread[] workers = new Thread[threads];
    for (int w = 0; w < threads; w++) {
      final int me = w;
      workers[w] =
          new Thread(
              () -> {
                long[] lat = new long[1 << 21];
                int n = 0;
                int k = me;
                long now = System.nanoTime();
                while (now < end && n < lat.length) {
                  m.writeCheckpoint(names.get(k), checkpoints.get(k));
                  long after = System.nanoTime();
                  lat[n++] = after - now;
                  now = after;
                  k += threads;
                  if (k >= tasks) {
                    k = me;
                  }
                }
                latencies[me] = lat;
                counts[me] = n;
                finished[me] = now;
              });
      workers[w].start();
    }
    long last = start;
    int n = 0;
    for (int w = 0; w < threads; w++) {
      workers[w].join();
      n += counts[w];
      last = Math.max(last, finished[w]);
    }
    double elapsed = (last - start) / 1e9;
    // Reads back what was written: the benchmark must not measure writes that went nowhere.
    if (!checkpoints.get(0).equals(m.readLastCheckpoint(names.get(0)))) {
      throw new IllegalStateException(name + ": read back a different checkpoint");
    }
    m.stop();
    long[] sorted = new long[n];
    int at = 0;
    for (int w = 0; w < threads; w++) {
      System.arraycopy(latencies[w], 0, sorted, at, counts[w]);
      at += counts[w];
    }
    Arrays.sort(sorted);
    return String.format(
        "| %s | %d | %d | %d | %.0f | %.2f | %.2f |",
        name,
        tasks,
        threads,
        n,
        n / elapsed,
        sorted[n / 2] / 1e6,
        sorted[Math.min(n - 1, (int) Math.ceil(n * 0.99) - 1)] / 1e6);
  }
}
