package org.apache.samza.azure.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.samza.azure.testing.Azurite;
import org.apache.samza.azure.testing.FaithfulProxy;
import org.apache.samza.azure.testing.job.ProcessorCluster;

/**
 * Storage faults against a running job (issue 10 §3 and §4): the same Samza job as {@link
 * FailoverBench} (file input, 16 partitions, one JVM per processor, each reaching storage through
 * its own endpoint of the Azure-faithful proxy) at the coordinator's default settings and Samza's
 * default {@code task.shutdown.ms}, put through scenarios one after another, each from a settled
 * job:
 *
 * <ul>
 *   <li>{@code cpu:S} — CPU time over S seconds of the leader's JVM and of a follower's, whole and
 *       for the coordinator's native threads alone;
 *   <li>{@code stall:S[:silent|refuse]} — every processor's storage cut for S seconds (silent:
 *       requests hang; refuse: connections refused). Reports new JobModel versions (rebalances),
 *       tasks started again (container restarts), each processor's longest pause in processing, and
 *       how long after storage returned every partition was processed again;
 *   <li>{@code cut:S[:silent|refuse]} — one follower's storage alone cut for S seconds. Reports
 *       when its processing paused, when the others processed its partitions, and how long after
 *       its storage returned it shared the work again.
 * </ul>
 *
 * <p>Usage: {@code FaultBench <processors> [realistic|exact] [scenario ...]}; the default scenarios
 * are {@code cpu:60 stall:5 stall:30 cut:10 cut:60}. Ends with the overlapping holds over the whole
 * run (two processors processing one partition at once), which must be 0, and exits non-zero if any
 * scenario did not recover or any overlap was seen.
 */
public final class FaultBench {
  private static final int PARTITIONS = 16;
  private static final long START = System.currentTimeMillis();
  private static final long SEED = 1;
  private static final long BOUND_MS = 180_000;
  private static final long TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

  private FaultBench() {}

  private static void say(String what) {
    System.out.printf("[%7.2f s] %s%n", (System.currentTimeMillis() - START) / 1000.0, what);
  }

  private static String secs(long ms) {
    return ms < 0 ? "never" : String.format("%.2f", ms / 1000.0);
  }

  /** Waits until the job is settled and its version stays put over two scans. */
  private static void quiet(ProcessorCluster c, List<String> live) throws Exception {
    long t = System.currentTimeMillis();
    if (c.millisUntilSettled(live, t, BOUND_MS) < 0) {
      throw new IllegalStateException(
          "the job did not settle before the scenario:\n" + c.describe());
    }
    long v = c.version();
    while (System.currentTimeMillis() - t < BOUND_MS) {
      long since = System.currentTimeMillis();
      if (c.millisUntilSettled(live, since, BOUND_MS) >= 0 && c.version() == v) {
        return;
      }
      v = c.version();
    }
    throw new IllegalStateException("the job kept rebalancing:\n" + c.describe());
  }

  /** Thread name -> CPU ticks (user + system) of every thread of {@code pid}. */
  private static Map<String, Long> threadTicks(long pid) throws IOException {
    Map<String, Long> out = new HashMap<>();
    try (DirectoryStream<Path> tasks =
        Files.newDirectoryStream(Paths.get("/proc/" + pid + "/task"))) {
      for (Path task : tasks) {
        String stat;
        try {
          stat = new String(Files.readAllBytes(task.resolve("stat")), StandardCharsets.UTF_8);
        } catch (IOException gone) {
          continue; // the thread ended between listing and reading
        }
        // "tid (comm) state ...": comm may hold spaces, so split after its closing parenthesis.
        String comm = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
        out.merge(comm + "#" + task.getFileName(), ticks, Long::sum);
      }
    }
    return out;
  }

  private static long sumTicks(Map<String, Long> ticks, boolean nativeOnly) {
    long n = 0;
    for (Map.Entry<String, Long> e : ticks.entrySet()) {
      if (!nativeOnly || e.getKey().startsWith("samza-azure-rt")) {
        n += e.getValue();
      }
    }
    return n;
  }

  /** Per cent of one core between two samples over {@code ms}. */
  private static String percent(long ticksBefore, long ticksAfter, long ms) {
    return String.format(
        "%.2f%%", 100.0 * (ticksAfter - ticksBefore) / TICKS_PER_SECOND / (ms / 1000.0));
  }

  private static boolean cpu(ProcessorCluster c, List<String> live, int seconds) throws Exception {
    String leader = c.leader();
    String follower = live.stream().filter(p -> !p.equals(leader)).findFirst().get();
    long lp = c.pid(leader);
    long fp = c.pid(follower);
    Map<String, Long> l0 = threadTicks(lp);
    Map<String, Long> f0 = threadTicks(fp);
    long t0 = System.currentTimeMillis();
    // A fixed measuring window, not a wait for a condition.
    Thread.sleep(seconds * 1000L);
    Map<String, Long> l1 = threadTicks(lp);
    Map<String, Long> f1 = threadTicks(fp);
    long ms = System.currentTimeMillis() - t0;
    String result =
        String.format(
            "cpu over %d s | leader %s: native %s, JVM %s | follower %s: native %s, JVM %s",
            seconds,
            leader,
            percent(sumTicks(l0, true), sumTicks(l1, true), ms),
            percent(sumTicks(l0, false), sumTicks(l1, false), ms),
            follower,
            percent(sumTicks(f0, true), sumTicks(f1, true), ms),
            percent(sumTicks(f0, false), sumTicks(f1, false), ms));
    say(result);
    System.out.println("RESULT | " + result + " |");
    return true;
  }

  private static boolean stall(ProcessorCluster c, List<String> live, int seconds, String mode)
      throws Exception {
    long v0 = c.version();
    String leader0 = c.leader();
    long t0 = System.currentTimeMillis();
    c.outage(ProcessorCluster.ALL, mode, seconds * 1000L);
    // The outage is the scenario: the proxy ends it on its own clock after this long.
    Thread.sleep(seconds * 1000L);
    long end = System.currentTimeMillis();
    say("storage back for every processor after " + seconds + " s (" + mode + ")");
    long settled = c.millisUntilSettled(live, end, BOUND_MS);
    Map<Integer, Long> first = c.firstMessageAfter(end, null);
    long resume = -1;
    if (first.size() == PARTITIONS) {
      for (long at : first.values()) {
        resume = Math.max(resume, at - end);
      }
    }
    List<String> gaps = new ArrayList<>();
    for (String id : live) {
      gaps.add(id + " " + secs(c.longestGap(id, t0, end + Math.max(settled, 0))));
    }
    long versions = c.version() - v0;
    int restarts = c.taskStartsSince(t0);
    String result =
        String.format(
            "stall %d s %s, all %d processors | rebalances %d | tasks restarted %d | longest"
                + " processing pause %s | every partition processed again %s s after storage"
                + " returned | leader %s -> %s",
            seconds,
            mode,
            live.size(),
            versions,
            restarts,
            gaps,
            secs(resume),
            leader0,
            c.leader());
    say(result);
    System.out.println("RESULT | " + result + " |");
    return settled >= 0;
  }

  private static boolean cut(ProcessorCluster c, List<String> live, int seconds, String mode)
      throws Exception {
    long v0 = c.version();
    String leader = c.leader();
    String victim = live.stream().filter(p -> !p.equals(leader)).findFirst().get();
    List<Integer> mine = new ArrayList<>();
    c.owners()
        .forEach(
            (p, ids) -> {
              if (ids.contains(victim)) {
                mine.add(p);
              }
            });
    long t0 = System.currentTimeMillis();
    c.outage(victim, mode, seconds * 1000L);
    // The outage is the scenario: the proxy ends it on its own clock after this long.
    Thread.sleep(seconds * 1000L);
    long end = System.currentTimeMillis();
    say("storage back for " + victim + " after " + seconds + " s (" + mode + ")");
    long rejoined = c.millisUntilSettled(live, end, BOUND_MS);
    Map<Integer, Long> byOthers = c.firstMessageAfter(t0, victim);
    long moved = -1;
    for (int p : mine) {
      Long at = byOthers.get(p);
      if (at == null) {
        moved = -1;
        break;
      }
      moved = Math.max(moved, at - t0);
    }
    long paused = c.longestGap(victim, t0, end);
    long lastBeforeEnd = end - paused; // its last message before storage returned, roughly
    String result =
        String.format(
            "cut %d s %s, %s alone (%d partitions) of %d | its processing paused %s s after the"
                + " cut | others processed all its partitions %s s after the cut | it shared the"
                + " work again %s s after its storage returned | rebalances %d | tasks started %d",
            seconds,
            mode,
            victim,
            mine.size(),
            live.size(),
            secs(lastBeforeEnd - t0),
            secs(moved),
            secs(rejoined),
            c.version() - v0,
            c.taskStartsSince(t0));
    say(result);
    System.out.println("RESULT | " + result + " |");
    return rejoined >= 0;
  }

  public static void main(String[] args) throws Exception {
    int n = Integer.parseInt(args[0]);
    int from = 1;
    String profile = "realistic";
    if (args.length > 1 && !args[1].contains(":")) {
      profile = args[1];
      from = 2;
    }
    if (!Arrays.asList("realistic", "exact").contains(profile)) {
      throw new IllegalArgumentException("profile must be realistic or exact: " + profile);
    }
    List<String> scenarios =
        from < args.length
            ? Arrays.asList(args).subList(from, args.length)
            : Arrays.asList("cpu:60", "stall:5", "stall:30", "cut:10", "cut:60");
    String classpath = System.getProperty("samza.azure.bench.classpath");
    List<String> jvmArgs =
        new ArrayList<>(Arrays.asList(System.getProperty("samza.azure.bench.jvmargs").split(" ")));
    Path dir = Files.createTempDirectory("samza-azure-faultbench");
    say(
        n
            + " processors, "
            + PARTITIONS
            + " partitions, azure-faithful "
            + profile
            + " (seed "
            + SEED
            + "), default settings; scenarios "
            + scenarios
            + "; logs in "
            + dir);
    boolean ok = true;
    try (Azurite azurite = Azurite.start();
        FaithfulProxy faithful = FaithfulProxy.start(azurite, n, SEED, profile)) {
      Map<String, String> config = new HashMap<>();
      config.put("job.name", "faultbench");
      config.put("azure.storage.connect", azurite.connectionString());
      // Samza's own default, which the test harness shortens.
      config.put("task.shutdown.ms", "30000");
      List<String> live = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        live.add("p" + (i + 1));
      }
      try (ProcessorCluster c =
          new ProcessorCluster(
              dir.resolve("job"), config, PARTITIONS, jvmArgs, classpath, faithful)) {
        long t0 = System.currentTimeMillis();
        for (String id : live) {
          c.start(id);
        }
        say(
            "start: "
                + secs(c.millisUntilSettled(live, t0, BOUND_MS))
                + " s; leader "
                + c.leader());
        for (String scenario : scenarios) {
          quiet(c, live);
          String[] s = scenario.split(":");
          int seconds = Integer.parseInt(s[1]);
          String mode = s.length > 2 ? s[2] : "silent";
          say("scenario " + scenario);
          boolean recovered;
          switch (s[0]) {
            case "cpu":
              recovered = cpu(c, live, seconds);
              break;
            case "stall":
              recovered = stall(c, live, seconds, mode);
              break;
            case "cut":
              recovered = cut(c, live, seconds, mode);
              break;
            default:
              throw new IllegalArgumentException("unknown scenario " + scenario);
          }
          if (!recovered) {
            say("did not recover within " + BOUND_MS / 1000 + " s:\n" + c.describe());
            ok = false;
            break;
          }
          for (String id : live) {
            if (!c.isRunning(id)) {
              say(id + " exited with " + c.exitStatus(id));
              ok = false;
            }
          }
        }
        List<String> overlaps = c.overlaps();
        say(
            "overlapping holds over the whole run: "
                + overlaps.size()
                + (overlaps.isEmpty() ? "" : " " + overlaps));
        System.out.println("RESULT | overlapping holds " + overlaps.size() + " |");
        ok &= overlaps.isEmpty();
      }
    }
    System.exit(ok ? 0 : 1);
  }
}
