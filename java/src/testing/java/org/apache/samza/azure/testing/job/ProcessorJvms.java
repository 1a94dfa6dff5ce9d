package org.apache.samza.azure.testing.job;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * The lifecycle of processor JVMs, one per processor id: launches {@code main <config file> <id>},
 * stops (SIGTERM), kills (SIGKILL), freezes and continues them (SIGSTOP/SIGCONT), and reads their
 * output ({@code <dir>/<id>.out}). It records when each JVM ended and when it was frozen, since a
 * task's log cannot say that about itself.
 */
public final class ProcessorJvms implements AutoCloseable {
  private final Path dir;
  private final List<String> jvmArgs;
  private final String classpath;
  private final Map<String, Process> processes = new ConcurrentHashMap<>();
  private final Map<String, Long> endedAt = new ConcurrentHashMap<>();

  /** Per processor, its SIGSTOP windows in order. */
  private final Map<String, List<Pause>> pauses = new ConcurrentHashMap<>();

  /** A SIGSTOP window: from when the STOP was sent until the CONT (MAX_VALUE while frozen). */
  public static final class Pause {
    public final long from;
    private volatile long to = Long.MAX_VALUE;

    Pause(long from) {
      this.from = from;
    }

    public long to() {
      return to;
    }
  }

  /**
   * @param dir holds {@code logback.xml} (see {@link ProcessorFiles}) and receives each processor's
   *     output and pid file
   * @param jvmArgs extra JVM flags for each processor (Samza needs --add-opens on Java 17)
   * @param classpath the processors' classpath (this project's classes and Samza)
   */
  public ProcessorJvms(Path dir, List<String> jvmArgs, String classpath) {
    this.dir = dir;
    this.jvmArgs = jvmArgs;
    this.classpath = classpath;
  }

  /** Starts {@code main <configFile> <id>} (a restarted id replaces its ended JVM). */
  public void start(String id, Class<?> main, Path configFile) throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
    cmd.addAll(jvmArgs);
    cmd.add("-Xmx256m");
    cmd.add("-Dlogback.configurationFile=" + dir.resolve(ProcessorFiles.LOGBACK));
    cmd.add("-cp");
    cmd.add(classpath);
    cmd.add(main.getName());
    cmd.add(configFile.toString());
    cmd.add(id);
    Process process =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve(id + ".out").toFile())
            .start();
    processes.put(id, process);
    endedAt.remove(id);
  }

  public boolean isRunning(String id) {
    Process p = processes.get(id);
    return p != null && p.isAlive();
  }

  /** The ids started so far, running or not. */
  public Collection<String> ids() {
    return processes.keySet();
  }

  /** The processor's exit status, or null while it runs (or was never started). */
  public Integer exitStatus(String id) {
    Process p = processes.get(id);
    return p == null || p.isAlive() ? null : p.exitValue();
  }

  /** SIGTERM: Samza stops the processor gracefully. Returns the exit code. */
  public int stop(String id) throws InterruptedException {
    return stop(Collections.singletonList(id)).get(id);
  }

  /**
   * SIGTERM to all of them at once (so their shutdowns overlap, as in a redeploy), then waits for
   * each. Returns id -> exit code.
   */
  public Map<String, Integer> stop(Collection<String> ids) throws InterruptedException {
    for (String id : ids) {
      processes.get(id).destroy();
    }
    Map<String, Integer> exits = new TreeMap<>();
    for (String id : ids) {
      Process p = processes.get(id);
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        throw new AssertionError(id + " did not stop within 60 s of SIGTERM");
      }
      endedAt.put(id, System.currentTimeMillis());
      exits.put(id, p.exitValue());
    }
    return exits;
  }

  /** SIGKILL, and waits until the process is gone. */
  public void kill(String id) throws InterruptedException {
    processes.get(id).destroyForcibly().waitFor();
    endedAt.put(id, System.currentTimeMillis());
  }

  /** When {@link #stop} or {@link #kill} saw the JVM gone, or null if neither did since start. */
  public Long endedAt(String id) {
    return endedAt.get(id);
  }

  /** SIGSTOP / SIGCONT by pid ({@code signal} "STOP" or "CONT"; others are sent, not recorded). */
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
      pauses.computeIfAbsent(id, k -> new ArrayList<>()).add(new Pause(before));
    } else if (signal.equals("CONT")) {
      List<Pause> p = pauses.get(id);
      p.get(p.size() - 1).to = System.currentTimeMillis();
    }
  }

  /** Processor {@code id}'s SIGSTOP windows so far, in order. */
  public List<Pause> pauses(String id) {
    return pauses.getOrDefault(id, Collections.<Pause>emptyList());
  }

  /** The pid of processor {@code id}'s JVM (it writes it at start; Java 8 has no Process.pid). */
  public long pid(String id) throws IOException {
    return Long.parseLong(
        new String(Files.readAllBytes(dir.resolve(id + ".pid")), StandardCharsets.UTF_8).trim());
  }

  /** Everything a processor printed so far. */
  public List<String> output(String id) throws IOException {
    return Files.readAllLines(dir.resolve(id + ".out"), StandardCharsets.UTF_8);
  }

  /** The last lines of a processor's output, for failure messages. */
  public String tail(String id, int lines) throws IOException {
    List<String> all = output(id);
    return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
  }

  /** Kills every JVM still running. */
  @Override
  public void close() {
    try {
      for (Process p : processes.values()) {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
