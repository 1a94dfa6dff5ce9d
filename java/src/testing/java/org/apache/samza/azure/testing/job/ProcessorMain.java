package org.apache.samza.azure.testing.job;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
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
    Properties props = new Properties();
    try (InputStream in = new FileInputStream(args[0])) {
      props.load(in);
    }
    Map<String, String> config = new HashMap<>();
    props.stringPropertyNames().forEach(k -> config.put(k, props.getProperty(k)));
    config.put("processor.id", args[1]);
    // The harness signals this process (SIGSTOP, SIGKILL) by pid; Java 8 has no Process.pid().
    String pid = java.lang.management.ManagementFactory.getRuntimeMXBean().getName().split("@")[0];
    java.nio.file.Files.write(
        java.nio.file.Paths.get(config.get("ownership.log.dir"), args[1] + ".pid"),
        pid.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    // "local": Samza's own LocalApplicationRunner, for the coordinators it knows (ZooKeeper,
    // upstream samza-azure), which the failover benchmark compares with ours.
    ApplicationRunner runner =
        "local".equals(config.get("ownership.runner"))
            ? new LocalApplicationRunner(new OwnershipApp(), new MapConfig(config))
            : new AzureApplicationRunner(new OwnershipApp(), new MapConfig(config));
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
    System.out.println("processor " + args[1] + " finished: " + status);
    if (status.getStatusCode() == ApplicationStatus.StatusCode.UnsuccessfulFinish) {
      Runtime.getRuntime().halt(1);
    }
  }
}
