package org.apache.samza.azure.bench;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.CountingProxy;
import org.apache.samza.azure.testing.FaithfulProxy;
import org.apache.samza.azure.testing.job.ProcessorCluster;

/**
 * Failover harness: runs the same Samza job (file input, 16 partitions, one JVM per processor) with
 * a given coordinator and measures start, graceful stop, kill -9 of a follower and of the leader
 * (each until every survivor processes every partition again), and the steady-state traffic to the
 * coordination service through a counting proxy.
 *
 * <p>Usage: {@code FailoverBench <azure|zk|upstream> <processors> [steady seconds] [bound seconds]
 * [realistic|exact|direct] [key=value ...]}. The profile (default realistic) is the Azure-faithful
 * proxy's: every processor reaches storage through an endpoint of its own of {@code azure-faithful}
 * (Azure's answers where Azurite differs; "realistic" adds 5–50 ms per request and one stall of
 * 0.5–3 s in 200), in front of the counting proxies; "direct" leaves the faithful proxy out. "zk"
 * is Samza's ZkJobCoordinator with a ZooKeeper server (3.6.3, the version Samza 1.8's Kafka module
 * uses; 1.8's own 3.4.13 client fails on Java 14+) started here on loopback; "upstream" is
 * samza-azure 1.8.0's AzureJobCoordinator, which by its code only works with processor ids
 * "0".."N-1" and GroupByContainerCount.
 */
public final class FailoverBench {
  private static final int PARTITIONS = 16;
  private static final long START = System.currentTimeMillis();
  private static final long SEED = 1;

  private FailoverBench() {}

  private static void say(String what) {
    System.out.printf("[%7.2f s] %s%n", (System.currentTimeMillis() - START) / 1000.0, what);
  }

  /** Starts one more processor and waits until it shares the work; returns how long. */
  private static long rejoin(
      ProcessorCluster c, List<String> live, String kind, int index, long bound) throws Exception {
    String id = kind.equals("upstream") ? String.valueOf(index) : "p" + (index + 1);
    long t = System.currentTimeMillis();
    c.start(id);
    live.add(id);
    long took = c.millisUntilSettled(live, t, bound);
    say(id + " joined: " + secs(took) + " s");
    return took;
  }

  private static long sum(long[] counts) {
    long total = 0;
    for (long c : counts) {
      total += c;
    }
    return total;
  }

  private static String secs(long ms) {
    return ms < 0 ? "no agreement" : String.format("%.1f", ms / 1000.0);
  }

  private static Process startZooKeeper(int port, Path dir, String classpath) throws Exception {
    Files.createDirectories(dir);
    Process p =
        new ProcessBuilder(
                new File(System.getProperty("java.home"), "bin/java").getPath(),
                "-Xmx256m",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                classpath,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                String.valueOf(port),
                dir.toString())
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("zookeeper.out").toFile())
            .start();
    long deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline) {
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return p;
      } catch (IOException notYet) {
        Thread.sleep(50);
      }
    }
    p.destroyForcibly();
    throw new IllegalStateException("ZooKeeper did not listen on " + port);
  }

  private static int freePort() throws IOException {
    try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  public static void main(String[] args) throws Exception {
    String kind = args[0];
    int n = Integer.parseInt(args[1]);
    int steadySeconds = args.length > 2 ? Integer.parseInt(args[2]) : 60;
    long bound = (args.length > 3 ? Integer.parseInt(args[3]) : 120) * 1000L;
    int overridesFrom = Math.min(4, args.length);
    String profile = "realistic";
    if (args.length > 4 && !args[4].contains("=")) {
      profile = args[4];
      overridesFrom = 5;
    }
    if (!Arrays.asList("realistic", "exact", "direct").contains(profile)) {
      throw new IllegalArgumentException("profile must be realistic, exact or direct: " + profile);
    }
    String classpath = System.getProperty("samza.azure.bench.classpath");
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.bench.jvmargs").split(" ")));
    Path dir = Files.createTempDirectory("samza-azure-bench-" + kind);
    say(
        kind
            + ": "
            + n
            + " processors, "
            + PARTITIONS
            + " partitions, storage profile "
            + profile
            + (profile.equals("direct") ? "" : " (azure-faithful, seed " + SEED + ")")
            + "; logs in "
            + dir);

    Process zk = null;
    FaithfulProxy faithful = null;
    try (Azurite azurite = Azurite.start();
        CountingProxy blob = new CountingProxy(azurite.blobPort);
        CountingProxy table = new CountingProxy(azurite.tablePort)) {
      Map<String, String> config = new HashMap<>();
      config.put("job.name", "bench" + kind);
      if (profile.equals("direct")) {
        config.put("azure.storage.connect", Azurite.connectionString(blob.port(), table.port()));
      } else {
        // Processors -> their own azure-faithful endpoint -> counting proxies -> Azurite. Two
        // endpoints more than N: a fresh processor joins after each of the two losses. The
        // harness's own reads (who leads) go to Azurite directly.
        faithful = FaithfulProxy.start(blob.port(), table.port(), n + 2, SEED, profile);
        config.put("azure.storage.connect", azurite.connectionString());
      }
      CountingProxy zkProxy = null;
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        ids.add(kind.equals("upstream") ? String.valueOf(i) : "p" + (i + 1));
      }
      if (kind.equals("zk")) {
        int zkPort = freePort();
        zk = startZooKeeper(zkPort, dir.resolve("zookeeper"), classpath);
        zkProxy = new CountingProxy(zkPort);
        config.put("job.coordinator.factory", "org.apache.samza.zk.ZkJobCoordinatorFactory");
        config.put("job.coordinator.zk.connect", "127.0.0.1:" + zkProxy.port());
        // ZkJobCoordinator requires a coordinator stream store; it only keeps config and
        // startpoints there, so each processor's own in-memory one serves (no Kafka here).
        config.put("job.coordinator.system", "inmem");
        config.put(
            "systems.inmem.samza.factory",
            "org.apache.samza.system.inmemory.InMemorySystemFactory");
        config.put("ownership.runner", "local");
        config.put(
            "task.name.grouper.factory",
            "org.apache.samza.container.grouper.task.GroupByContainerIdsFactory");
      } else if (kind.equals("upstream")) {
        config.put(
            "job.coordinator.factory", "org.apache.samza.coordinator.AzureJobCoordinatorFactory");
        config.put("ownership.runner", "local");
        config.put(
            "task.name.grouper.factory",
            "org.apache.samza.container.grouper.task.GroupByContainerCountFactory");
        config.put("job.container.count", String.valueOf(n));
      } else if (!kind.equals("azure")) {
        throw new IllegalArgumentException("coordinator must be azure, zk or upstream: " + kind);
      }
      // Arguments after the bound are config overrides, key=value, e.g. other timings.
      for (String kv : Arrays.asList(args).subList(overridesFrom, args.length)) {
        int eq = kv.indexOf('=');
        if (eq <= 0) {
          throw new IllegalArgumentException("expected key=value, got '" + kv + "'");
        }
        config.put(kv.substring(0, eq), kv.substring(eq + 1));
        say("override: " + kv);
      }
      try (ProcessorCluster c =
          new ProcessorCluster(
              dir.resolve("job"), config, PARTITIONS, jvmArgs, classpath, faithful)) {
        if (kind.equals("zk")) {
          c.leaderFromLogs("I became the leader");
        } else if (kind.equals("upstream")) {
          c.leaderFromLogs("Became leader with lease ID");
        }
        List<String> live = new ArrayList<>(ids);
        long t0 = System.currentTimeMillis();
        if (kind.equals("upstream")) {
          // Started together, upstream's processors race to create the container and blob,
          // and the losers fail to start (a NullPointerException in AzureLeaderElector). Give
          // it a fair chance: one first, the rest once it leads.
          c.start(live.get(0));
          while (c.leader() == null && System.currentTimeMillis() - t0 < bound) {
            Thread.sleep(50);
          }
          say(
              "upstream: first processor leads after "
                  + secs(System.currentTimeMillis() - t0)
                  + " s");
          for (String id : live.subList(1, live.size())) {
            c.start(id);
          }
        } else {
          for (String id : live) {
            c.start(id);
          }
        }
        long start = c.millisUntilSettled(live, t0, bound);
        say("start: " + secs(start) + " s");
        String steady = "-";
        String graceful = "-";
        String follower = "-";
        String leader = "-";
        long join = -1;
        if (start >= 0) {
          blob.reset();
          table.reset();
          if (zkProxy != null) {
            zkProxy.reset();
          }
          long proxied0 = faithful == null ? 0 : sum(faithful.requests());
          long s0 = System.currentTimeMillis();
          // Measuring traffic over a fixed window, not waiting for a condition.
          Thread.sleep(steadySeconds * 1000L);
          double hours = (System.currentTimeMillis() - s0) / 3_600_000.0;
          if (zkProxy != null) {
            steady =
                String.format(
                    "n/a (ZooKeeper protocol); %.0f KiB",
                    (zkProxy.bytesUp.get() + zkProxy.bytesDown.get()) / 1024.0 / n / hours);
          } else {
            steady =
                String.format(
                    "%.0f requests, %.0f KiB",
                    (blob.requests.get() + table.requests.get()) / (double) n / hours,
                    (blob.bytesUp.get()
                            + blob.bytesDown.get()
                            + table.bytesUp.get()
                            + table.bytesDown.get())
                        / 1024.0
                        / n
                        / hours);
          }
          say("steady state per processor-hour: " + steady);
          if (faithful != null) {
            say(
                String.format(
                    "  (azure-faithful received %.0f requests per processor-hour)",
                    (sum(faithful.requests()) - proxied0) / (double) n / hours));
          }

          // Each phase starts from N running processors: a fresh one joins after each loss.
          int next = n;
          String lead = c.leader();
          say("leader: " + lead);
          String victim = live.stream().filter(p -> !p.equals(lead)).findFirst().get();
          long t = System.currentTimeMillis();
          c.stop(victim);
          live.remove(victim);
          long g = c.millisUntilSettled(live, t, bound);
          graceful = secs(g);
          say("graceful stop of " + victim + ": " + graceful + " s");
          if (g >= 0) {
            join = rejoin(c, live, kind, next++, bound);
            if (join >= 0) {
              String lead2 = c.leader();
              victim = live.stream().filter(p -> !p.equals(lead2)).findFirst().get();
              t = System.currentTimeMillis();
              c.kill(victim);
              live.remove(victim);
              long f = c.millisUntilSettled(live, t, bound);
              follower = secs(f);
              say("kill -9 of follower " + victim + ": " + follower + " s");
              if (f >= 0 && rejoin(c, live, kind, next++, bound) >= 0) {
                String lead3 = c.leader();
                t = System.currentTimeMillis();
                c.kill(lead3);
                live.remove(lead3);
                leader = secs(c.millisUntilSettled(live, t, bound));
                say(
                    "kill -9 of leader "
                        + lead3
                        + ": "
                        + leader
                        + " s (new leader "
                        + c.leader()
                        + ")");
              }
            }
          }
        }
        List<String> overlaps = c.overlaps();
        say(
            "overlapping holds: "
                + overlaps.size()
                + (overlaps.isEmpty() ? "" : " " + overlaps.toString()));
        System.out.printf(
            "RESULT | %s | %s | %d | %s | %s | %s | %s | %s | %s | %d overlaps |%n",
            kind,
            profile,
            n,
            secs(start),
            secs(join),
            graceful,
            follower,
            leader,
            steady,
            overlaps.size());
      }
    } finally {
      if (faithful != null) {
        faithful.close();
      }
      if (zk != null) {
        zk.destroyForcibly().waitFor();
      }
    }
  }
}
