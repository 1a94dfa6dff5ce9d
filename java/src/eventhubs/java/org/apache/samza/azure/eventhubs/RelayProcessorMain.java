package org.apache.samza.azure.eventhubs;

import java.io.IOException;
import java.util.Map;
import org.apache.samza.azure.testing.job.ProcessorMain;
import org.apache.samza.config.MapConfig;
import org.apache.samza.runtime.ApplicationRunners;

/**
 * One Samza processor in its own JVM: {@code RelayProcessorMain <config.properties> <processor
 * id>}. Runs {@link RelayApp} with the runner named by {@code app.runner.class} (Samza's {@link
 * ApplicationRunners}, as a deployment would); SIGTERM stops it gracefully.
 */
public final class RelayProcessorMain {
  private RelayProcessorMain() {}

  public static void main(String[] args) throws IOException {
    Map<String, String> config = ProcessorMain.loadConfig(args[0], args[1], RelayTask.LOG_DIR);
    System.setProperty(FakeEventHubClient.PROCESSOR_PROPERTY, args[1]);
    ProcessorMain.runUntilStopped(
        ApplicationRunners.getApplicationRunner(new RelayApp(), new MapConfig(config)), args[1]);
  }
}
