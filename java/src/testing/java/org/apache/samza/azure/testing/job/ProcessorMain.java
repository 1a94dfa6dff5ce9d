package org.apache.samza.azure.testing.job;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.samza.azure.AzureApplicationRunner;
import org.apache.samza.config.MapConfig;
import org.apache.samza.job.ApplicationStatus;
import org.apache.samza.runtime.ApplicationRunner;
import org.apache.samza.runtime.LocalApplicationRunner;

/**
 * One Samza processor in its own JVM: {@code ProcessorMain <config.properties> <processor id>}.
 * Runs {@link OwnershipApp} with {@link AzureApplicationRunner}; SIGTERM stops it gracefully.
 */
public final class ProcessorMain {
  private ProcessorMain() {}

  public static void main(String[] args) throws IOException {
    Map<String, String> config = loadConfig(args[0], args[1], "ownership.log.dir");
    // "local": Samza's own LocalApplicationRunner, for the coordinators it knows (ZooKeeper,
    // upstream samza-azure), which the failover benchmark compares with ours.
    ApplicationRunner runner =
        "local".equals(config.get("ownership.runner"))
            ? new LocalApplicationRunner(new OwnershipApp(), new MapConfig(config))
            : new AzureApplicationRunner(new OwnershipApp(), new MapConfig(config));
    runUntilStopped(runner, args[1]);
  }

  /**
   * The properties file as a config, with {@code processor.id} set to {@code id}; writes this JVM's
   * pid to {@code <dir in logDirKey>/<id>.pid}, since the harness signals processes (SIGSTOP,
   * SIGKILL) by pid and Java 8 has no Process.pid().
   */
  public static Map<String, String> loadConfig(String file, String id, String logDirKey)
      throws IOException {
    Properties props = new Properties();
    try (InputStream in = new FileInputStream(file)) {
      props.load(in);
    }
    Map<String, String> config = new HashMap<>();
    props.stringPropertyNames().forEach(k -> config.put(k, props.getProperty(k)));
    config.put("processor.id", id);
    String pid = ManagementFactory.getRuntimeMXBean().getName().split("@")[0];
    Files.write(
        Paths.get(config.get(logDirKey), id + ".pid"), pid.getBytes(StandardCharsets.UTF_8));
    return config;
  }

  /** Runs until the application ends; SIGTERM stops it gracefully; a failure exits with 1. */
  public static void runUntilStopped(ApplicationRunner runner, String id) {
    Thread hook =
        new Thread(
            () -> {
              runner.kill();
              runner.waitForFinish(Duration.ofSeconds(60));
            },
            "graceful-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    runner.run();
    runner.waitForFinish();
    ApplicationStatus status = runner.status();
    System.out.println("processor " + id + " finished: " + status);
    if (status.getStatusCode() == ApplicationStatus.StatusCode.UnsuccessfulFinish) {
      Runtime.getRuntime().halt(1);
    }
  }
}
