package org.apache.samza.azure.eventhubs;

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
import org.apache.samza.config.MapConfig;
import org.apache.samza.job.ApplicationStatus;
import org.apache.samza.runtime.ApplicationRunner;
import org.apache.samza.runtime.ApplicationRunners;

/**
 * One Samza processor in its own JVM: {@code RelayProcessorMain <config.properties> <processor
 * id>}. Runs {@link RelayApp} with the runner named by {@code app.runner.class} (Samza's {@link
 * ApplicationRunners}, as a deployment would); SIGTERM stops it gracefully.
 */
public final class RelayProcessorMain {
  private RelayProcessorMain() {}

  public static void main(String[] args) throws IOException {
    Properties props = new Properties();
    try (InputStream in = new FileInputStream(args[0])) {
      props.load(in);
    }
    Map<String, String> config = new HashMap<>();
    props.stringPropertyNames().forEach(k -> config.put(k, props.getProperty(k)));
    config.put("processor.id", args[1]);
    System.setProperty(FakeEventHubClient.PROCESSOR_PROPERTY, args[1]);
    String pid = ManagementFactory.getRuntimeMXBean().getName().split("@")[0];
    Files.write(
        Paths.get(config.get(RelayTask.LOG_DIR), args[1] + ".pid"),
        pid.getBytes(StandardCharsets.UTF_8));
    ApplicationRunner runner =
        ApplicationRunners.getApplicationRunner(new RelayApp(), new MapConfig(config));
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
