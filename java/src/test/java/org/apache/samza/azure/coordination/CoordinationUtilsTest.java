package org.apache.samza.azure.coordination;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.samza.azure.AzuriteTest;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.azure.testing.job.UtilsProbe;
import org.apache.samza.config.MapConfig;
import org.junit.After;
import org.junit.Test;

/** Our CoordinationUtils used from separate JVMs against one Azurite. */
public class CoordinationUtilsTest extends AzuriteTest {
  private static final AtomicInteger JOBS = new AtomicInteger();
  private final List<Process> processes = new ArrayList<>();
  private Path dir;
  private Path configFile;

  @After
  public void killProbes() throws InterruptedException {
    for (Process p : processes) {
      p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
  }

  private Map<String, String> config() throws IOException {
    Map<String, String> c = azurite.config();
    c.put("job.name", "utils" + JOBS.incrementAndGet());
    return c;
  }

  private Path out(String name) {
    return dir.resolve(name + ".out");
  }

  private Process probe(String name, String... args) throws IOException {
    if (dir == null) {
      dir = Files.createTempDirectory("samza-azure-utils");
      configFile = dir.resolve("config.properties");
      Properties props = new Properties();
      props.putAll(config());
      try (OutputStream o = Files.newOutputStream(configFile)) {
        props.store(o, null);
      }
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
    cmd.addAll(Arrays.asList(System.getProperty("samza.azure.test.jvmargs").split(" ")));
    cmd.add("-cp");
    cmd.add(System.getProperty("samza.azure.test.classpath"));
    cmd.add(UtilsProbe.class.getName());
    cmd.add(configFile.toString());
    cmd.add(name);
    cmd.addAll(Arrays.asList(args));
    Process p =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(out(name).toFile())
            .start();
    processes.add(p);
    return p;
  }

  private List<String> lines(String name, String prefix) {
    try {
      return Files.readAllLines(out(name), StandardCharsets.UTF_8).stream()
          .filter(l -> l.startsWith(prefix))
          .collect(Collectors.toList());
    } catch (IOException e) {
      return new ArrayList<>();
    }
  }

  private static long time(String line) {
    String[] f = line.split(" ");
    return Long.parseLong(f[f.length - 1]);
  }

  @Test
  public void lockIsExclusiveAcrossProcessesAndLapsesWhenItsHolderDies() throws Exception {
    List<String> names = Arrays.asList("a", "b", "c");
    for (String n : names) {
      probe(n, "lock", "L", "300");
    }
    for (Process p : processes) {
      assertTrue(p.waitFor(90, TimeUnit.SECONDS));
    }
    List<long[]> held = new ArrayList<>();
    for (String n : names) {
      assertEquals(n + ": " + lines(n, ""), 1, lines(n, "LOCKED").size());
      held.add(new long[] {time(lines(n, "LOCKED").get(0)), time(lines(n, "UNLOCKING").get(0))});
    }
    for (long[] x : held) {
      for (long[] y : held) {
        assertTrue("two holders at once", x == y || x[1] <= y[0] || y[1] <= x[0]);
      }
    }

    Process hang = probe("hang", "lock-and-hang", "M");
    Await.until("the lock", 30_000, () -> !lines("hang", "LOCKED").isEmpty());
    hang.destroyForcibly().waitFor();
    long killed = System.currentTimeMillis();
    probe("next", "lock", "M", "0");
    Await.until("the lock after its holder died", 40_000, () -> !lines("next", "LOCKED").isEmpty());
    long waited = time(lines("next", "LOCKED").get(0)) - killed;
    // Released by the lease lapsing: at most the 15 s lease after the holder's last renew.
    assertTrue("acquired " + waited + " ms after the kill", waited <= 16_000);
  }

  @Test
  public void latchOpensWhenEveryProcessCountedDownAndTimesOutOtherwise() throws Exception {
    for (String n : Arrays.asList("a", "b", "c")) {
      probe(n, "latch", "X", "3", "30000");
    }
    probe("lonely", "latch", "Y", "2", "1500");
    for (Process p : processes) {
      assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    }
    for (String n : Arrays.asList("a", "b", "c")) {
      assertEquals(n + ": " + lines(n, ""), 1, lines(n, "LATCH-OK").size());
    }
    assertEquals(1, lines("lonely", "LATCH-TIMEOUT").size());
  }

  @Test
  public void oneLeaderAtATimeAndAnotherAfterItDies() throws Exception {
    List<String> names = Arrays.asList("a", "b", "c");
    List<Process> ps = new ArrayList<>();
    for (String n : names) {
      ps.add(probe(n, "elect"));
    }
    Await.until(
        "a leader", 30_000, () -> names.stream().anyMatch(n -> !lines(n, "LEADER").isEmpty()));
    List<String> leaders =
        names.stream().filter(n -> !lines(n, "LEADER").isEmpty()).collect(Collectors.toList());
    assertEquals(1, leaders.size());
    String first = leaders.get(0);
    ps.get(names.indexOf(first)).destroyForcibly().waitFor();
    List<String> rest = names.stream().filter(n -> !n.equals(first)).collect(Collectors.toList());
    Await.until(
        "a new leader", 40_000, () -> rest.stream().anyMatch(n -> !lines(n, "LEADER").isEmpty()));
    assertEquals(1, rest.stream().filter(n -> !lines(n, "LEADER").isEmpty()).count());
  }

  @Test
  public void clusterMembershipCountsLiveProcesses() throws Exception {
    probe("a", "member", "4");
    probe("b", "member", "4");
    Await.until(
        "both see two",
        30_000,
        () -> lines("a", "SIZE 2").size() > 0 && lines("b", "SIZE 2").size() > 0);
    for (Process p : processes) {
      assertTrue(p.waitFor(30, TimeUnit.SECONDS));
    }
    assertEquals(1, lines("a", "LEFT").size());
    try (AzureCoordinationUtils utils =
        new AzureCoordinationUtils("probe", "test", new MapConfig(readConfig()))) {
      assertEquals(0, utils.getClusterMembership().getNumberOfProcessors());
    }
  }

  private Map<String, String> readConfig() throws IOException {
    Properties props = new Properties();
    props.load(Files.newInputStream(configFile));
    Map<String, String> c = new java.util.HashMap<>();
    props.stringPropertyNames().forEach(k -> c.put(k, props.getProperty(k)));
    return c;
  }
}
